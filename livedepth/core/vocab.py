"""The vocabularies every layer shares: names, choices and fallbacks, with no behaviour behind them.

A leaf module (standard library only), so settings, backends, render and io agree on the same
words without importing each other.
"""

from __future__ import annotations

import re

#: Inference backends ``--backend`` accepts (``auto`` measures the installed faithful ones; int8
#: and bf16 are reduced precision, chosen only by name).
BACKEND_NAMES = ("auto", "torch", "onnx", "openvino", "int8", "bf16")
#: Torch devices ``--device`` accepts.
DEVICES = ("auto", "cpu", "cuda", "mps")
#: How colorized depth is arranged with the input frame.
#: The 3D layouts, composed from the stereo views (livedepth.render.stereo).
STEREO_LAYOUTS = ("sbs", "half-sbs", "tab", "half-tab", "anaglyph", "rgbd")
ANAGLYPH_MODES = ("dubois", "color", "gray")
LAYOUTS = ("depth", "side", "overlay", "blur", *STEREO_LAYOUTS)
#: How depth maps to grey levels: per frame, carried over from frame to frame, or fixed bounds.
NORMALIZE_MODES = ("frame", "stable", "fixed")
#: x264 speed/size presets, fastest first.
AUDIO_CHOICES = ("all", "first", "none")  # --audio: every audio stream, the first, or none
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

#: The frame rate assumed where a camera, file, stream or configuration does not give one.
DEFAULT_FPS = 30.0

#: Output video containers by suffix, and the muxer each is written with.
MUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
#: Suffixes a folder's files need to count as videos (batch conversion).
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mts",
                            ".m2ts", ".wmv", ".flv", ".3gp", ".ogv"})

#: What ``--camera`` accepts: ``N`` (a V4L2 camera index), ``picam`` or ``picam:N`` (picamera2).
CAMERA_SPEC = re.compile(r"(?P<index>\d+)|picam(?::(?P<picam>\d+))?")
CAMERA_SPEC_HELP = "N (a camera index), picam or picam:N (a Raspberry Pi Camera Module)"


def muxer(path) -> str:
    """The muxer an output video at ``path`` is written with (mp4 unless .mov or .mkv)."""
    return MUXERS.get(path.suffix.lower(), "mp4")


def camera_spec_problem(spec: object) -> str | None:
    """What is wrong with a ``--camera`` value (for the settings check), or None."""
    ok = isinstance(spec, (int, str)) and CAMERA_SPEC.fullmatch(str(spec).strip()) is not None
    return None if ok else f"must be {CAMERA_SPEC_HELP}"
