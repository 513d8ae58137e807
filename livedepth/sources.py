"""Live frame sources and the capture stage that keeps only the newest frame.

A source is a camera index, a video file, or an ``http(s)://`` / ``rtsp://`` URL read by
OpenCV's FFmpeg backend. Cameras and streams are paced by the device. Files are either paced
at their native frame rate (``realtime=True``, so they behave like a camera) or decoded on
demand, one frame ahead of inference, so the capture side never spins.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from livedepth.errors import LivedepthError
from livedepth.frames import Frame
from livedepth.stages import Latest

log = logging.getLogger(__name__)

URL_SCHEMES = ("http://", "https://", "rtsp://", "rtsps://")
#: Consecutive failed camera reads tolerated before the camera counts as gone (seconds).
CAMERA_STALL_S = 5.0


class Source:
    """Base class: ``read()`` returns the next BGR frame or ``None`` at the end."""

    #: ``True`` when frames arrive at their own pace (camera, stream, realtime file).
    paced = True
    name = "source"

    @property
    def fps(self) -> float:
        """Nominal frame rate (frames per second, float); 0 when unknown."""
        return 0.0

    def read(self, stop: threading.Event) -> np.ndarray | None:
        raise NotImplementedError

    def release(self) -> None:
        """Free the device or file; idempotent."""


def _quiet_capture(open_fn: Callable[[], cv2.VideoCapture]) -> cv2.VideoCapture:
    """Open a VideoCapture with OpenCV's own warnings silenced (we report failures ourselves)."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return open_fn()
    finally:
        cv2.utils.logging.setLogLevel(previous)


def _capture_fps(cap: cv2.VideoCapture) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if 0.0 < fps < 1000.0 else 0.0


class CameraSource(Source):
    """A local camera by index; the device paces the frames."""

    def __init__(self, index: int, width: int | None = None, height: int | None = None) -> None:
        self.name = f"camera {index}"
        self._cap = _quiet_capture(lambda: cv2.VideoCapture(index))
        if not self._cap.isOpened():
            self._cap.release()
            raise LivedepthError(f"cannot open camera {index} (no such device, or it is busy); try --input FILE")
        if width and height:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._fps = _capture_fps(self._cap) or 30.0

    @property
    def fps(self) -> float:
        return self._fps

    def read(self, stop: threading.Event) -> np.ndarray | None:
        stalled_since = None
        while not stop.is_set():
            ok, image = self._cap.read()
            if ok and image is not None:
                return image
            now = time.monotonic()
            stalled_since = stalled_since or now
            if now - stalled_since > CAMERA_STALL_S:
                raise LivedepthError(f"{self.name} stopped delivering frames (unplugged?)")
            time.sleep(0.05)
        return None

    def release(self) -> None:
        self._cap.release()


class FileSource(Source):
    """A video file: decoded on demand, or paced at its native (float) frame rate with ``realtime``."""

    def __init__(self, path: str | Path, realtime: bool = False) -> None:
        path = Path(path)
        self.name = str(path)
        if not path.is_file():
            raise LivedepthError(f"input not found: {path}")
        self._cap = _quiet_capture(lambda: cv2.VideoCapture(str(path), cv2.CAP_FFMPEG))
        if not self._cap.isOpened():
            self._cap.release()
            raise LivedepthError(f"cannot read video: {path} (not a format FFmpeg can decode)")
        self.paced = realtime
        self._fps = _capture_fps(self._cap)
        if realtime and not self._fps:
            log.warning("%s has no frame rate; pacing it at 30 fps", path)
            self._fps = 30.0
        self._count = 0
        self._start: float | None = None

    @property
    def fps(self) -> float:
        return self._fps

    def read(self, stop: threading.Event) -> np.ndarray | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if self.paced:
            now = time.monotonic()
            if self._start is None:
                self._start = now
            due = self._start + self._count / self._fps
            if due > now:
                stop.wait(due - now)
            self._count += 1
        return image

    def release(self) -> None:
        self._cap.release()


class StreamSource(Source):
    """An http(s)/rtsp stream; reconnects with exponential backoff and gives up after ``reconnect_timeout`` s."""

    def __init__(self, url: str, reconnect_timeout: float = 30.0, io_timeout: float = 5.0) -> None:
        self.name = url
        self.url = url
        self.reconnect_timeout = reconnect_timeout
        self.io_timeout_ms = int(io_timeout * 1000)
        self.reconnects = 0
        self._cap = self._open()
        if self._cap is None:
            raise LivedepthError(f"cannot open stream {url} (unreachable, or not a video stream)")
        self._fps = _capture_fps(self._cap)

    @property
    def fps(self) -> float:
        return self._fps or 30.0

    def _open(self) -> cv2.VideoCapture | None:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.io_timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.io_timeout_ms]
        cap = _quiet_capture(lambda: cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params))
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def read(self, stop: threading.Event) -> np.ndarray | None:
        if self._cap is not None:
            ok, image = self._cap.read()
            if ok and image is not None:
                return image
            self._cap.release()
            self._cap = None
        return self._reconnect(stop)

    def _reconnect(self, stop: threading.Event) -> np.ndarray | None:
        log.warning("stream %s dropped; reconnecting for up to %.0f s", self.url, self.reconnect_timeout)
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.25
        while not stop.is_set():
            cap = self._open()
            if cap is not None:
                ok, image = cap.read()
                if ok and image is not None:
                    self._cap = cap
                    self.reconnects += 1
                    log.info("stream %s reconnected", self.url)
                    return image
                cap.release()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LivedepthError(f"stream {self.url} lost; no frames for {self.reconnect_timeout:g} s, giving up")
            stop.wait(min(delay, remaining))
            delay = min(delay * 2, 4.0)
        return None

    def release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_source(
    camera: int | None = None,
    input: str | None = None,
    realtime: bool = False,
    reconnect_timeout: float = 30.0,
) -> Source:
    """The source for ``--camera N`` or ``--input PATH_OR_URL`` (camera 0 when neither is given)."""
    if input is not None:
        if input.lower().startswith(URL_SCHEMES):
            return StreamSource(input, reconnect_timeout=reconnect_timeout)
        return FileSource(input, realtime=realtime)
    return CameraSource(0 if camera is None else camera)


class Capture:
    """Reads a source into a :class:`Latest` holder: the capture stage of a live run.

    Paced sources are read continuously (the newest frame wins). Unpaced files are decoded on
    demand: a frame is read only while inference waits for one, so nothing spins. ``run``
    ends at the end of the source or on ``stop``; ``close`` releases the source and closes the
    holder, so the stage after it ends too.
    """

    def __init__(self, source: Source, holder: Latest[Frame], stop: threading.Event) -> None:
        self.source = source
        self.holder = holder
        self.stop = stop
        self.captured = 0

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.source.paced and not self.holder.wait_demand(self.stop):
                return
            image = self.source.read(self.stop)
            if image is None:
                return
            self.holder.put(Frame(image, self.captured, time.monotonic()))
            self.captured += 1

    def close(self) -> None:
        self.source.release()
        self.holder.close()
