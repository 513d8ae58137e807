"""Live frame sources through OpenCV, and :func:`open_source`, which picks the source for the settings.

A source is a camera (a V4L2 index through OpenCV, or a Raspberry Pi Camera Module through
picamera2: :mod:`livedepth.io.picamera`), a video file, or an ``http(s)://`` / ``rtsp://`` URL
read by OpenCV's FFmpeg backend. Cameras and streams are paced by the device. Files are decoded
with PyAV like every other video path (upright, as a player shows them), and either paced at
their native frame rate (``realtime=True``, so they behave like a camera) or decoded on demand,
one frame ahead of inference, so the capture side never spins.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from livedepth.core.errors import LivedepthError
from livedepth.core.vocab import CAMERA_SPEC, CAMERA_SPEC_HELP, DEFAULT_FPS
from livedepth.io.picamera import PICAM_SIZE, PICAMERA2_HINT, PicameraSource, import_picamera2, picamera_count
from livedepth.io.source import CAMERA_STALL_S, Source

log = logging.getLogger(__name__)

URL_SCHEMES = ("http://", "https://", "rtsp://", "rtsps://")
#: Where V4L2 devices describe themselves; a Pi's libcamera nodes are not OpenCV cameras.
SYSFS_V4L2 = Path("/sys/class/video4linux")
#: Name prefixes of the Raspberry Pi camera stack's V4L2 nodes (CSI receivers, ISP, codecs).
LIBCAMERA_NODES = ("unicam", "rp1-cfe", "pispbe", "bcm2835-isp", "bcm2835-codec", "rpivid", "rpi-hevc")


def _quiet_capture(open_fn: Callable[[], cv2.VideoCapture]) -> cv2.VideoCapture:
    """Open a VideoCapture with OpenCV's own warnings silenced (we report failures ourselves).

    OpenCV 5 has the log level in ``cv2.utils.logging``; 4.x (the Pi's numpy 1 builds) has
    ``cv2.getLogLevel``/``cv2.setLogLevel`` instead.
    """
    logging_api = getattr(cv2.utils, "logging", cv2)
    previous = logging_api.getLogLevel()
    logging_api.setLogLevel(0)  # LOG_LEVEL_SILENT in both
    try:
        return open_fn()
    finally:
        logging_api.setLogLevel(previous)


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
        self._fps = _capture_fps(self._cap) or DEFAULT_FPS

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
        from livedepth.io.video import probe, read_frames

        path = Path(path)
        self.name = str(path)
        fps = probe(path).fps  # one-line errors for a missing file or one that holds no video
        self._frames = read_frames(path)
        self.paced = realtime
        self._fps = fps if 0.0 < fps < 1000.0 else 0.0
        if realtime and not self._fps:
            log.warning("%s has no frame rate; pacing it at %g fps", path, DEFAULT_FPS)
            self._fps = DEFAULT_FPS
        self._count = 0
        self._start: float | None = None

    @property
    def fps(self) -> float:
        return self._fps

    def read(self, stop: threading.Event) -> np.ndarray | None:
        frame = next(self._frames, None)
        if frame is None:
            return None
        if self.paced:
            now = time.monotonic()
            if self._start is None:
                self._start = now
            due = self._start + self._count / self._fps
            if due > now:
                stop.wait(due - now)
            self._count += 1
        return frame.image

    def release(self) -> None:
        self._frames.close()


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
        return self._fps or DEFAULT_FPS

    def _open(self) -> cv2.VideoCapture | None:
        timeout = self.io_timeout_ms
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout]
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


def parse_camera(spec: int | str | None) -> tuple[str, int]:
    """``N`` -> ``("v4l2", N)``; ``picam`` / ``picam:N`` -> ``("picam", N)``; ``None`` is camera 0."""
    text = "0" if spec is None else str(spec).strip()
    match = CAMERA_SPEC.fullmatch(text)
    if match is None:
        raise LivedepthError(f"--camera {spec}: must be {CAMERA_SPEC_HELP}")
    if match["index"] is not None:
        return "v4l2", int(match["index"])
    return "picam", int(match["picam"] or 0)


def check_camera(spec: int | str | None) -> None:
    """The cheap part of opening ``--camera SPEC``, for before the model loads: the spec's form
    and, for ``picam``, that picamera2 imports (one-line :class:`LivedepthError` otherwise)."""
    if parse_camera(spec)[0] == "picam":
        import_picamera2()


def _libcamera_node(index: int) -> str | None:
    """The name of ``/dev/video<index>`` when it belongs to the Pi's camera stack, else None."""
    try:
        name = (SYSFS_V4L2 / f"video{index}" / "name").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name if name.startswith(LIBCAMERA_NODES) else None


def open_camera(index: int, size: tuple[int, int] = PICAM_SIZE) -> Source:
    """Camera ``index``: a V4L2 camera through OpenCV or, on a Pi where ``/dev/video<index>`` is no
    such camera (absent, or one of libcamera's nodes) but picamera2 sees Camera Module ``index``,
    that Camera Module (logged)."""
    node = _libcamera_node(index)
    if node is None:
        try:
            return CameraSource(index)
        except LivedepthError as exc:
            error = exc
    else:
        error = LivedepthError(f"cannot open camera {index}: /dev/video{index} ({node}) is a Camera Module node "
                               f"only libcamera can drive; use --camera picam:{index} ({PICAMERA2_HINT})")
    if index < picamera_count():
        log.info("camera %d: no V4L2 camera; using Camera Module %d through picamera2 (--camera picam:%d)",
                 index, index, index)
        return PicameraSource(index, size=size)
    raise error


def open_source(
    camera: int | str | None = None,
    input: str | None = None,
    realtime: bool = False,
    reconnect_timeout: float = 30.0,
    camera_size: tuple[int, int] = PICAM_SIZE,
) -> Source:
    """The source for ``--camera SPEC`` or ``--input PATH_OR_URL`` (camera 0 when neither is given).

    ``camera`` is ``N`` (int or str), ``picam`` or ``picam:N`` (see :func:`parse_camera`);
    ``camera_size`` is the Camera Module's stream size.
    """
    if input is not None:
        if input.lower().startswith(URL_SCHEMES):
            return StreamSource(input, reconnect_timeout=reconnect_timeout)
        return FileSource(input, realtime=realtime)
    kind, index = parse_camera(camera)
    if kind == "picam":
        return PicameraSource(index, size=camera_size)
    return open_camera(index, size=camera_size)
