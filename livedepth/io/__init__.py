"""Frames in and out: camera, file and stream sources, video and raw-depth files, sinks, the window."""
