"""The web page's 3D view: its data, and who is watching it.

The page (``static/view3d.js``) polls ``GET /rgbd.png``: the newest live frame's colour on the
left and its normalised depth on the right (grey, white nearest: the same ``n`` the colours use,
so it is as flicker-stable as they are), both scaled to :data:`RGBD_LONG_SIDE`. The server
encodes it only when a viewer asks, at most once per frame.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

#: Long side of each half of the RGBD image, in pixels: 160x120 for a 4:3 camera. That is one
#: mesh vertex per pixel (19,200), about the depth's real detail on a Pi (the rpi preset runs the
#: model at 192x128), and a ~28 KB PNG that takes 2.6x the flat stream's 640x480 JPEG to scale
#: and encode (benchmarks/web3d_cost.py), so a Pi serves the few a second the page asks for.
RGBD_LONG_SIDE = 160
#: Fast zlib and PNG's "up" filter (OpenCV >= 4.11; older ones choose per row): measured here 1.6x
#: faster than OpenCV's default filters, at about the same size.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1,
              *([cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP] if hasattr(cv2, "IMWRITE_PNG_FILTER") else [])]
#: A 3D viewer that has not polled for this long (seconds) is no longer counted.
VIEWER_WINDOW_S = 2.0


def rgbd_image(frame_bgr: np.ndarray, near: np.ndarray, long_side: int = RGBD_LONG_SIDE) -> np.ndarray:
    """BGR uint8 H x 2W: the frame on the left, the ``near`` grey (255 nearest) on the right,
    each scaled (area-averaged) to ``long_side`` pixels on the long side of ``near``."""
    h, w = near.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    colour = cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA)
    grey = cv2.resize(near, size, interpolation=cv2.INTER_AREA)
    return np.hstack([colour, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)])


def encode_rgbd_png(frame_and_near: tuple[np.ndarray, np.ndarray]) -> bytes:
    """:func:`rgbd_image` of ``(frame_bgr, near)`` as PNG bytes (lossless: the depth is geometry)."""
    ok, buf = cv2.imencode(".png", rgbd_image(*frame_and_near), PNG_PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


class RecentViewers:
    """The addresses that polled in the last ``window`` seconds: the 3D view's viewers, who hold
    no connection open between polls. ``visit`` admits a new address only while there is room."""

    def __init__(self, window: float = VIEWER_WINDOW_S) -> None:
        self.window = window
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def visit(self, address: str, room: int) -> bool:
        """Note a poll from ``address``; False for a new address when ``room`` viewers are already here."""
        with self._lock:
            self._forget_old()
            if address not in self._seen and len(self._seen) >= room:
                return False
            self._seen[address] = time.monotonic()
            return True

    def count(self) -> int:
        with self._lock:
            self._forget_old()
            return len(self._seen)

    def _forget_old(self) -> None:
        oldest = time.monotonic() - self.window
        for address in [a for a, t in self._seen.items() if t < oldest]:
            del self._seen[address]
