"""A Raspberry Pi Camera Module through picamera2 (libcamera), imported only when a camera needs it."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time

import numpy as np

from livedepth.core.errors import LivedepthError
from livedepth.core.vocab import DEFAULT_FPS
from livedepth.io.source import CAMERA_STALL_S, Source

log = logging.getLogger(__name__)

#: The Camera Module's main stream (width, height): 4:3 like the sensors of Camera Modules 1, 2
#: and HQ (full field of view), scaled by the ISP at no CPU cost, and what a USB camera gives
#: by default, so the network input is the same as with ``--camera N`` (192x128 with the rpi
#: preset, 256x192 with keep-aspect at 256); the colorized frame and the web stream stay
#: 640x480. A larger stream would only add CPU work (the resize to the network input, the
#: depth upsampling, the colour layouts and JPEG encoding all scale with the frame's pixels).
PICAM_SIZE = (640, 480)
PICAMERA2_HINT = ("sudo apt install python3-picamera2, and run livedepth in a venv that sees the system "
                  "packages (./run.sh creates it so on a Pi)")


def import_picamera2():
    """The ``Picamera2`` class, or a one-line :class:`LivedepthError` saying how to install it."""
    try:
        from picamera2 import Picamera2  # optional: only a Pi has it
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
    """The frame rate a picamera2 configuration asks for (``FrameDurationLimits``, us); ``DEFAULT_FPS`` when unknown."""
    try:
        shortest = min(config["controls"]["FrameDurationLimits"])  # type: ignore[index]
        return 1e6 / shortest if shortest > 0 else DEFAULT_FPS
    except (KeyError, TypeError, ValueError):
        return DEFAULT_FPS


def picamera_count() -> int:
    """Camera Modules picamera2 sees; 0 without picamera2 (never raises)."""
    try:
        from picamera2 import Picamera2  # optional: only a Pi has it

        return len(Picamera2.global_camera_info())
    except Exception:  # noqa: BLE001 - not installed, not importable, or no libcamera
        return 0
