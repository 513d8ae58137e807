"""The OpenCV preview window: overlay, keys, snapshots, and a safe check that a window can open."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from livedepth.core.errors import LivedepthError
from livedepth.core.files import write_atomically
from livedepth.core.frames import Rendered
from livedepth.io.pointcloud import Camera
from livedepth.io.sinks import Sink

log = logging.getLogger(__name__)

WINDOW = "livedepth"
NO_DISPLAY_HINT = "use --no-display, --record OUT.mp4 or --serve PORT"
#: Opens and closes a window in a child process: Qt aborts the whole process when it cannot
#: reach the display, so the real process must never be the first to try.
_PROBE = "import cv2; cv2.namedWindow('livedepth-probe'); cv2.waitKey(1); cv2.destroyAllWindows()"
KEYS = {ord("q"): "quit", 27: "quit", ord("c"): "colormap", ord("l"): "layout", ord("s"): "snapshot",
        ord("p"): "cloud"}


def gui_backend() -> str:
    """OpenCV's GUI backend from its build information ('NONE' for headless builds)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip() or "NONE"
    return "UNKNOWN"


def check_gui(timeout: float = 30.0) -> None:
    """Raise a one-line :class:`LivedepthError` unless an OpenCV window can be opened here."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise LivedepthError(f"no display (DISPLAY and WAYLAND_DISPLAY are unset); {NO_DISPLAY_HINT}")
    if gui_backend().upper() == "NONE":
        raise LivedepthError(f"this OpenCV build has no GUI support (opencv-python-headless?); {NO_DISPLAY_HINT}")
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LivedepthError(f"opening a window timed out; {NO_DISPLAY_HINT}") from None
    if probe.returncode != 0:
        lines = [line for line in probe.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit code {probe.returncode}"
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        raise LivedepthError(f"cannot open a window on display {where} ({reason}); {NO_DISPLAY_HINT}")


def draw_status(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``image`` with ``text`` in a dark band at the top left."""
    out = image.copy()
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
    scale = min(0.6, (out.shape[1] - 12) / tw)  # fit the width of small frames
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (tw + 12, th + base + 10), (0, 0, 0), -1)
    cv2.putText(out, text, (6, th + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class DisplaySink(Sink):
    """The preview window: each frame with a status line, and the window's own keys.

    Keys: q, Esc or closing the window call ``on_quit``; c and l switch the ``colorizer``'s
    colormap and layout; s saves the current frame (without the overlay) as a PNG in
    ``snapshot_dir``, p its point cloud as a PLY (through ``camera``). ``status`` gives the
    overlay's text.
    """

    poll_interval = 0.01  # keeps the window responsive between frames

    def __init__(
        self,
        colorizer,
        on_quit: Callable[[str], None],
        status: Callable[[], str] = str,
        snapshot_dir: str | Path = ".",
        title: str = WINDOW,
        camera: Camera = Camera(),
    ) -> None:
        self.colorizer = colorizer
        self.on_quit = on_quit
        self.status = status
        self.title = title
        self.snapshot_dir = Path(snapshot_dir)
        self.camera = camera
        self.snapshots: list[Path] = []
        self._last: Rendered | None = None
        self._opened = False

    def write(self, rendered: Rendered) -> None:
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
            self._opened = True
        self._last = rendered
        status = self.status()
        cv2.imshow(self.title, draw_status(rendered.image, status) if status else rendered.image)
        self.poll()

    def poll(self) -> None:
        if not self._opened:
            return
        key = cv2.waitKey(1)
        action = KEYS.get(key & 0xFF) if key != -1 else None
        if action == "quit" or (key == -1 and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1):
            self.on_quit("quit")
        elif action == "colormap":
            log.info("colormap: %s", self.colorizer.cycle_colormap())
        elif action == "layout":
            log.info("layout: %s", self.colorizer.cycle_layout())
        elif action == "snapshot":
            self.snapshot()
        elif action == "cloud":
            self.save_cloud()

    def snapshot(self) -> Path | None:
        """Save the last shown frame as ``livedepth-<time>-<frame index>.png``."""
        return self._save("png", _png)

    def save_cloud(self) -> Path | None:
        """Save the point cloud of the last shown frame as ``livedepth-<time>-<frame index>.ply``
        (its depth normalised as its colours were)."""
        return self._save("ply", lambda r: self.camera.ply(r.frame.image, self.colorizer.unit_depth(r.depth)))

    def _save(self, suffix: str, encode: Callable[[Rendered], bytes]) -> Path | None:
        if self._last is None:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.snapshot_dir / f"livedepth-{stamp}-{self._last.frame.index:06d}.{suffix}"
        try:
            write_atomically(path, encode(self._last))
        except (OSError, LivedepthError) as exc:
            log.warning("could not write snapshot %s: %s", path, exc)
            return None
        self.snapshots.append(path)
        log.info("snapshot: %s", path)
        return path

    def close(self) -> None:
        if self._opened:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
            self._opened = False


def _png(rendered: Rendered) -> bytes:
    ok, png = cv2.imencode(".png", rendered.image)
    if not ok:
        raise OSError("PNG encoding failed")
    return png.tobytes()
