"""The browser view: HTTP server, MJPEG stream, photo uploads and the static page."""
