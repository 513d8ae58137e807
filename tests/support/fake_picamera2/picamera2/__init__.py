"""API-CONTRACT STAND-IN for picamera2. This is NOT picamera2 and NOT a test of real hardware.

It implements only the picamera2 calls ``livedepth.io.picamera.PicameraSource`` makes, with the
behaviour the Picamera2 manual documents, so the adapter can be tested on a machine without a
Raspberry Pi. It is importable as ``picamera2`` only while a test puts this folder on
``sys.path`` (``tests/test_picamera.py``), or a CLI test puts it on ``PYTHONPATH``.

The contract it stands for:

- ``Picamera2.global_camera_info()``: one dict per attached camera (``Model``, ``Location``,
  ``Rotation``, ``Id``, ``Num``), ordered by camera number.
- ``Picamera2(camera_num)``: opens that camera (one user at a time).
- ``create_video_configuration(main={"size": (w, h), "format": "RGB888"})``: a configuration
  whose ``controls`` hold ``FrameDurationLimits`` (us; 30 fps for video); ``configure(config)``.
- ``start()``, ``stop()``, ``close()``; capturing needs a started camera, ``close()`` stops it.
- ``capture_request(wait=False)``: a job; ``job.get_result(timeout)`` returns the next frame the
  camera completes after the call (paced at the frame rate) or raises ``TimeoutError``.
- ``request.make_array("main")``: a copy of the frame, ``(h, w, 3)`` uint8. For ``"RGB888"`` its
  bytes are **B, G, R** (libcamera names the 24-bit word, low byte first); ``"BGR888"`` gives R, G, B.
- ``request.get_metadata()["SensorTimestamp"]``: nanoseconds, the start of the frame's readout,
  in CLOCK_MONOTONIC (the kernel's V4L2 buffer time; the clock of ``time.monotonic_ns()``).
  The frame reaches the application ``DELIVERY_NS`` later (readout and ISP).
- ``request.release()`` hands the buffer back; a released request cannot be read again.

Test knobs (not picamera2 API): ``CAMERAS``; per camera ``fail_after`` (the camera raises
``RuntimeError`` after delivering that many frames), ``stall_after`` (no frame after that many),
``start_error``, ``clock_offset_ns`` (stamps from another clock); and what a test checks:
``instances``, ``calls``, ``stamps`` (frame number -> SensorTimestamp), ``outstanding``.

The scene (in true colours): a mid-grey frame with a red patch (top left, ``RED_PATCH``) and a
blue one (bottom right, ``BLUE_PATCH``); pixel (0, 0) holds the frame number modulo 256 on
every channel, so a test can tell which frame it got.
"""

from __future__ import annotations

import threading
import time

import numpy as np

DELIVERY_NS = 8_000_000
#: (y0, y1, x0, x1) patches in a frame of any size, as fractions of height and width.
RED_PATCH = (0.1, 0.4, 0.1, 0.4)
BLUE_PATCH = (0.6, 0.9, 0.6, 0.9)

CAMERAS = [{"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a",
            "Num": 0}]
instances: list[Picamera2] = []
_lock = threading.Lock()


def reset() -> None:
    """Forget every camera opened so far (each test starts clean)."""
    instances.clear()


def patch_slices(height: int, width: int, patch: tuple[float, float, float, float]) -> tuple[slice, slice]:
    y0, y1, x0, x1 = patch
    return slice(int(y0 * height), int(y1 * height)), slice(int(x0 * width), int(x1 * width))


def scene_rgb(height: int, width: int, number: int) -> np.ndarray:
    """Frame ``number`` in true colours, R, G, B order."""
    rgb = np.full((height, width, 3), 128, np.uint8)
    rgb[patch_slices(height, width, RED_PATCH)] = (255, 0, 0)
    rgb[patch_slices(height, width, BLUE_PATCH)] = (0, 0, 255)
    rgb[0, 0] = number % 256
    return rgb


class _Job:
    """What ``capture_request(wait=False)`` returns: the next frame completed after the call."""

    def __init__(self, camera: Picamera2) -> None:
        self._camera = camera
        self._created = time.monotonic_ns()

    def get_result(self, timeout: float | None = None) -> CompletedRequest:
        return self._camera._next_request(self._created, timeout)


class CompletedRequest:
    def __init__(self, camera: Picamera2, number: int, stamp: int, pixels: np.ndarray) -> None:
        self._camera = camera
        self.number = number
        self._stamp = stamp
        self._pixels = pixels
        self._released = False

    def make_array(self, name: str) -> np.ndarray:
        if self._released:
            raise RuntimeError("request already released")
        if name != "main":
            raise RuntimeError(f"Stream {name!r} is not defined")
        return self._pixels.copy()

    def get_metadata(self) -> dict:
        if self._released:
            raise RuntimeError("request already released")
        return {"SensorTimestamp": self._stamp, "ExposureTime": 20000, "FrameDuration": self._camera.frame_us}

    def release(self) -> None:
        if self._released:
            raise RuntimeError("CompletedRequest: lock now has negative ref_count")
        self._released = True
        with _lock:
            self._camera.outstanding -= 1


class Picamera2:
    @staticmethod
    def global_camera_info() -> list[dict]:
        return [dict(c) for c in CAMERAS]

    def __init__(self, camera_num: int = 0) -> None:
        if camera_num >= len(CAMERAS):
            raise IndexError("list index out of range")
        if any(c.camera_num == camera_num and c.is_open for c in instances):
            raise RuntimeError("Failed to acquire camera: Device or resource busy")
        self.camera_num = camera_num
        self.is_open = True
        self.started = False
        self.config: dict | None = None
        self.calls: list[str] = []
        self.stamps: dict[int, int] = {}
        self.outstanding = 0
        self.delivered = 0
        self.frame_us = 33333
        self.fail_after: int | None = None
        self.stall_after: int | None = None
        self.start_error: Exception | None = None
        self.clock_offset_ns = 0
        self._start_ns = 0
        self._next_number = 0
        instances.append(self)

    def create_video_configuration(self, main: dict | None = None) -> dict:
        main = {"size": (640, 480), "format": "XBGR8888", **(main or {})}
        return {"use_case": "video", "main": main, "controls": {"FrameDurationLimits": (self.frame_us, self.frame_us)},
                "buffer_count": 6}

    def configure(self, config: dict) -> None:
        self.calls.append("configure")
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if config["main"]["format"] not in ("RGB888", "BGR888"):
            raise RuntimeError(f"stand-in supports RGB888 and BGR888 only, not {config['main']['format']}")
        self.config = config
        self.frame_us = min(config["controls"]["FrameDurationLimits"])

    def start(self) -> None:
        self.calls.append("start")
        if self.start_error is not None:
            raise self.start_error
        if self.config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True
        self._start_ns = time.monotonic_ns()

    def stop(self) -> None:
        self.calls.append("stop")
        self.started = False

    def close(self) -> None:
        self.calls.append("close")
        self.started = False
        self.is_open = False

    def capture_request(self, wait: bool | None = None) -> _Job | CompletedRequest:
        if not self.is_open or not self.started:
            raise RuntimeError("Camera is not running")
        job = _Job(self)
        return job if wait is False else job.get_result()

    def _next_request(self, after_ns: int, timeout: float | None) -> CompletedRequest:
        period = self.frame_us * 1000
        with _lock:
            # The first frame whose readout starts after the call, and after the last one handed out.
            number = max(self._next_number, -(-(after_ns - self._start_ns) // period))
            self._next_number = number + 1
        if self.fail_after is not None and self.delivered >= self.fail_after:
            raise RuntimeError("camera fell off the bus")
        readout = self._start_ns + number * period
        delivered = readout + DELIVERY_NS
        wait_s = max(0.0, (delivered - time.monotonic_ns()) / 1e9)
        stalled = self.stall_after is not None and self.delivered >= self.stall_after
        if stalled or (timeout is not None and wait_s > timeout):
            with _lock:
                self._next_number = number  # this frame is still to come for the next caller
            time.sleep(timeout if timeout is not None else 3600)
            raise TimeoutError()
        time.sleep(wait_s)
        if not self.started:
            raise RuntimeError("Camera stopped")
        stamp = readout + self.clock_offset_ns
        self.stamps[number] = stamp
        height_width = self.config["main"]["size"][::-1]
        rgb = scene_rgb(*height_width, number)
        pixels = rgb[..., ::-1] if self.config["main"]["format"] == "RGB888" else rgb  # RGB888 is B, G, R in memory
        with _lock:
            self.outstanding += 1
            self.delivered += 1
        return CompletedRequest(self, number, stamp, np.ascontiguousarray(pixels))
