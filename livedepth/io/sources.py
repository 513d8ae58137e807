"""Live frame sources and the capture stage that keeps only the newest frame.

A source is a camera (a V4L2 index through OpenCV, or a Raspberry Pi Camera Module through
picamera2), a video file, or an ``http(s)://`` / ``rtsp://`` URL read by OpenCV's FFmpeg
backend. Cameras and streams are paced by the device. Files are either paced at their native
frame rate (``realtime=True``, so they behave like a camera) or decoded on demand, one frame
ahead of inference, so the capture side never spins.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from livedepth.core.errors import LivedepthError
from livedepth.core.frames import Frame
from livedepth.core.stages import Latest

log = logging.getLogger(__name__)

URL_SCHEMES = ("http://", "https://", "rtsp://", "rtsps://")
#: Consecutive failed camera reads tolerated before the camera counts as gone (seconds).
CAMERA_STALL_S = 5.0
#: What ``--camera`` accepts: ``N`` (a V4L2 camera index), ``picam`` or ``picam:N`` (picamera2).
CAMERA_SPEC = re.compile(r"(?P<index>\d+)|picam(?::(?P<picam>\d+))?")
CAMERA_SPEC_HELP = "N (a camera index), picam or picam:N (a Raspberry Pi Camera Module)"
#: The Camera Module's main stream (width, height): 4:3 like the sensors of Camera Modules 1, 2
#: and HQ (full field of view), scaled by the ISP at no CPU cost, and what a USB camera gives
#: by default, so the network input is the same as with ``--camera N`` (192x128 with the rpi
#: preset, 256x192 with keep-aspect at 256); the colorized frame and the web stream stay
#: 640x480. A larger stream would only add CPU work (the resize to the network input, the
#: depth upsampling, the colour layouts and JPEG encoding all scale with the frame's pixels).
PICAM_SIZE = (640, 480)
#: Where V4L2 devices describe themselves; a Pi's libcamera nodes are not OpenCV cameras.
SYSFS_V4L2 = Path("/sys/class/video4linux")
#: Name prefixes of the Raspberry Pi camera stack's V4L2 nodes (CSI receivers, ISP, codecs).
LIBCAMERA_NODES = ("unicam", "rp1-cfe", "pispbe", "bcm2835-isp", "bcm2835-codec", "rpivid", "rpi-hevc")
PICAMERA2_HINT = ("sudo apt install python3-picamera2, and run livedepth in a venv that sees the system "
                  "packages (./run.sh creates it so on a Pi)")


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

    def capture_time(self) -> float:
        """When the frame ``read()`` just returned was captured, in the ``time.monotonic()`` clock.

        By default the time it was read; a camera that stamps its frames overrides this.
        """
        return time.monotonic()

    def release(self) -> None:
        """Free the device or file; idempotent."""


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


def import_picamera2():
    """The ``Picamera2`` class, or a one-line :class:`LivedepthError` saying how to install it."""
    try:
        from picamera2 import Picamera2
    except ModuleNotFoundError as exc:
        if exc.name != "picamera2":
            raise LivedepthError(f"picamera2 is installed but cannot import {exc.name}: {PICAMERA2_HINT}") from None
        raise LivedepthError(f"--camera picam needs picamera2, which is not installed: {PICAMERA2_HINT}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. a system picamera2 built against another numpy
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LivedepthError(f"picamera2 is installed but does not import ({first}); {PICAMERA2_HINT}") from None
    return Picamera2


class PicameraSource(Source):
    """A Raspberry Pi Camera Module through picamera2 (libcamera); the camera paces the frames.

    One video configuration with a ``size`` main stream in picamera2's ``"RGB888"`` format,
    whose arrays are B, G, R in memory (libcamera names formats by the 24-bit word, low byte
    first), so frames are used as they come: BGR, like OpenCV's. Each frame's capture time is
    its request's ``SensorTimestamp`` (nanoseconds, the start of the sensor readout, stamped by
    the kernel with CLOCK_MONOTONIC, the clock of ``time.monotonic()``), so latency counts from
    the sensor, not from when Python got the buffer. Should the stamps come from another clock
    (more than a second away from ``time.monotonic()``), they are anchored to the arrival of
    the earliest frame instead, with a warning. ``release()`` stops and closes the camera
    (idempotent); so does a failure while opening it.
    """

    def __init__(self, index: int = 0, size: tuple[int, int] = PICAM_SIZE) -> None:
        Picamera2 = import_picamera2()
        self.index = index
        self.name = f"picam:{index}"
        self._camera = None
        self._started = False
        self._offset: float | None = None
        self._captured_at = 0.0
        try:
            cameras = Picamera2.global_camera_info()
        except Exception as exc:  # noqa: BLE001 - libcamera itself failed
            raise LivedepthError(f"picamera2 cannot list cameras: {exc}") from None
        if index >= len(cameras):
            found = f"{len(cameras)} Camera Module(s)" if cameras else "no Camera Module (is the ribbon cable seated?)"
            raise LivedepthError(f"no Camera Module {index}: libcamera sees {found}")
        model = cameras[index].get("Model")
        if model:
            self.name = f"picam:{index} ({model})"
        try:
            self._camera = Picamera2(index)
            config = self._camera.create_video_configuration(main={"size": tuple(size), "format": "RGB888"})
            self._camera.configure(config)
            self._camera.start()
            self._started = True
        except Exception as exc:  # noqa: BLE001 - busy, or not supported: one line, and the camera closed
            self.release()
            raise LivedepthError(f"cannot start {self.name}: {exc} (is another program using the camera?)") from None
        self._fps = _frame_rate(config)

    @property
    def fps(self) -> float:
        return self._fps

    def read(self, stop: threading.Event) -> np.ndarray | None:
        camera = self._camera
        if camera is None or stop.is_set():
            return None
        try:
            job = camera.capture_request(wait=False)
            deadline = time.monotonic() + CAMERA_STALL_S
            while not hasattr(job, "make_array"):  # a Job; picamera2 before 0.3.13 returned a ready request
                try:
                    job = job.get_result(timeout=0.1)
                except (TimeoutError, concurrent.futures.TimeoutError):
                    if stop.is_set():
                        return None  # the camera is stopped and closed next, with the job
                    if time.monotonic() > deadline:
                        raise LivedepthError(f"{self.name} stopped delivering frames") from None
            request = job
            try:
                image = request.make_array("main")
                metadata = request.get_metadata()
            finally:
                request.release()
        except LivedepthError:
            raise
        except Exception as exc:  # noqa: BLE001 - picamera2/libcamera failures become one line
            raise LivedepthError(f"{self.name} failed: {type(exc).__name__}: {exc}") from None
        self._captured_at = self._monotonic(metadata.get("SensorTimestamp"))
        return np.ascontiguousarray(image[..., :3])

    def _monotonic(self, stamp: object) -> float:
        """The sensor timestamp (ns) as a ``time.monotonic()`` time, never later than now."""
        now = time.monotonic()
        if not isinstance(stamp, int) or isinstance(stamp, bool) or stamp <= 0:
            return now
        sensor = stamp / 1e9
        lag = now - sensor
        if self._offset is None:
            self._offset = 0.0
            if abs(lag) >= 1.0:
                log.warning("%s: sensor timestamps are %.1f s off time.monotonic(); latency counts from the "
                            "first frame's arrival", self.name, lag)
                self._offset = lag
        elif self._offset and lag < self._offset:
            self._offset = lag  # another clock: the quickest arrival is the best anchor
        return min(sensor + self._offset, now)

    def capture_time(self) -> float:
        return self._captured_at

    def release(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            if self._started:
                camera.stop()
        except Exception as exc:  # noqa: BLE001 - close it all the same
            log.warning("stopping %s failed: %s", self.name, exc)
        finally:
            try:
                camera.close()
            except Exception as exc:  # noqa: BLE001
                log.warning("closing %s failed: %s", self.name, exc)


def _frame_rate(config: object) -> float:
    """The frame rate a picamera2 configuration asks for (``FrameDurationLimits``, us); 30 when unknown."""
    try:
        shortest = min(config["controls"]["FrameDurationLimits"])  # type: ignore[index]
        return 1e6 / shortest if shortest > 0 else 30.0
    except (KeyError, TypeError, ValueError):
        return 30.0


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


def camera_spec_problem(spec: object) -> str | None:
    """What is wrong with a ``--camera`` value (for the settings check), or None."""
    ok = isinstance(spec, (int, str)) and CAMERA_SPEC.fullmatch(str(spec).strip()) is not None
    return None if ok else f"must be {CAMERA_SPEC_HELP}"


def _libcamera_node(index: int) -> str | None:
    """The name of ``/dev/video<index>`` when it belongs to the Pi's camera stack, else None."""
    try:
        name = (SYSFS_V4L2 / f"video{index}" / "name").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name if name.startswith(LIBCAMERA_NODES) else None


def picamera_count() -> int:
    """Camera Modules picamera2 sees; 0 without picamera2 (never raises)."""
    try:
        from picamera2 import Picamera2

        return len(Picamera2.global_camera_info())
    except Exception:  # noqa: BLE001 - not installed, not importable, or no libcamera
        return 0


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
            self.holder.put(Frame(image, self.captured, self.source.capture_time()))
            self.captured += 1

    def close(self) -> None:
        self.source.release()
        self.holder.close()
