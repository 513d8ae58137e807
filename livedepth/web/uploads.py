"""Photo uploads of the web page: decoded, run and encoded in a worker process of their own.

A live stream and an upload in one process share the GIL. An upload thread at a low CPU
priority that holds the GIL when the scheduler sets it aside stalls the live stream until it
runs again (priority inversion); at a normal priority it takes half the CPU. So uploads run in
:class:`UploadWorker`'s child process, started when the page is loaded or at the first upload.
It builds an estimator with the live one's weights and size, on eager torch (a photo's new
shape then costs one forward, where an exported backend would export and compile a model for
it), and runs under Linux's ``SCHED_IDLE`` policy: on CPU the live stream leaves, preempted as
soon as the live stream's threads wake. One upload runs at a time; the others wait their turn.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import struct
import sys
import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection

import cv2
import numpy as np

from livedepth.core.predictor import Predictor
from livedepth.render.colorize import Colorizer
from livedepth.render.stereo import Stereo
from livedepth.settings import StereoSettings

log = logging.getLogger(__name__)

#: Seconds a closing server waits for the worker process to end before killing it.
CLOSE_WAIT_S = 2.0


class HTTPError(Exception):
    """A request we refuse, with its status code and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, WebP or BMP header, without decoding; None if unknown."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 9 <= len(data):
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker == 0xFF:
                    i += 1
                elif marker == 0x01 or 0xD0 <= marker <= 0xD8:
                    i += 2
                elif marker in _JPEG_SOF:
                    h, w = struct.unpack(">HH", data[i + 5:i + 9])
                    return w, h
                else:
                    i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
            return None
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                bits = struct.unpack("<I", data[21:25])[0]
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8X":
                return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
            return None
        if data[:2] == b"BM":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
    except struct.error:
        return None
    return None


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """Check the header's pixel count before decoding, then decode for real (BGR uint8)."""
    size = image_size(data)
    if size is None:
        raise HTTPError(415, "not a PNG, JPEG, WebP or BMP image")
    w, h = size
    if w * h > max_pixels:
        raise HTTPError(413, f"image too large: {w}x{h} is over {max_pixels} pixels")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[1] != w or image.shape[0] != h:
        raise HTTPError(400, "cannot decode the image (corrupt or truncated)")
    return image


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may be: pixels before decoding, and the long side it is scaled down to
    (``[web] max_upload_megapixels`` and ``upload_max_side``)."""

    max_pixels: int
    max_side: int


def depth_png(estimator: Predictor, data: bytes, layout: str, colormap: str, limits: UploadLimits,
              stereo: StereoSettings) -> bytes:
    """The colorized depth of the photo in ``data`` as PNG bytes (3D layouts with the run's ``stereo``)."""
    image = decode_upload(data, limits.max_pixels)
    h, w = image.shape[:2]
    if max(h, w) > limits.max_side:
        scale = limits.max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    depth = estimator.predict(image)
    colorizer = Colorizer(colormap=colormap, layout=layout, normalize="frame", stereo=Stereo(**asdict(stereo)))
    ok, buf = cv2.imencode(".png", colorizer.render(depth, image))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def background_priority() -> None:
    """Let the calling thread, and the threads it starts later (they inherit it), run only on
    CPU that normal threads leave: ``SCHED_IDLE`` (Linux), else ``nice 19``, else as it is."""
    if not sys.platform.startswith("linux"):
        return
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, 19)


def serve_uploads(conn: Connection, estimator_settings: Mapping, limits: UploadLimits,
                  stereo: StereoSettings) -> None:
    """The worker process: answer ``(data, layout, colormap)`` requests until the pipe closes.

    Replies are ``("png", bytes)``, ``("http", status, message)`` for a refused upload, or
    ``("error", message)``. The estimator is built first, at background priority.
    """
    if hasattr(os, "setsid"):
        os.setsid()  # Ctrl+C in the terminal is for the server: it ends this process by closing the pipe
    background_priority()  # before any thread starts: the runtime's pools inherit it
    try:
        from livedepth.inference.estimator import DepthEstimator  # after background_priority: torch's pools inherit it

        estimator, failure = DepthEstimator(**estimator_settings).load(), None
    except Exception as exc:  # noqa: BLE001 - every request gets the reason
        estimator, failure = None, f"{type(exc).__name__}: {exc}"
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if estimator is None:
                raise RuntimeError(failure)
            conn.send(("png", depth_png(estimator, *request, limits, stereo)))
        except HTTPError as exc:
            conn.send(("http", exc.status, str(exc)))
        except Exception as exc:  # noqa: BLE001 - the reason goes back to the server's log
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class UploadWorker:
    """Runs photo uploads in a child process (see the module's docstring). Thread-safe.

    ``estimator_settings`` are ``DepthEstimator`` keyword arguments (``model_settings()``); the
    3D layouts use the run's ``stereo`` settings.
    The process starts at :meth:`warm` (the web page calls it when it is loaded, so the first
    photo finds the model ready) or at the first upload, and is started again if it dies. It
    ends after ``idle_s`` seconds without an upload (``[web] upload_idle_s``), giving its memory back, and the next
    upload starts it again.
    """

    def __init__(self, estimator_settings: Mapping, limits: UploadLimits, idle_s: float,
                 stereo: StereoSettings = StereoSettings()) -> None:
        # eager torch: every photo may have a shape of its own, and building a model per shape
        # (an ONNX export, a compile) costs many forwards; the reference model needs none
        self.estimator_settings = {**estimator_settings, "backend": "torch", "eager": True}
        self.limits = limits
        self.idle_s = idle_s
        self.stereo = stereo
        self._turn = threading.Lock()  # one upload at a time
        self._state = threading.Lock()  # guards the process, the pipe, the countdown and the closed flag
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._closed = False
        self._countdown: threading.Timer | None = None
        self._uses = 0  # a countdown started before the latest use is stale

    @property
    def pid(self) -> int | None:
        """The worker process's id while it runs."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def warm(self) -> None:
        """Start the worker process, if it is not running, without waiting for it."""
        with suppress(HTTPError):  # closed: nothing to start
            self._connection()
            self._count_down()

    def depth_png(self, data: bytes, layout: str, colormap: str) -> bytes:
        """The colorized depth PNG of an uploaded photo; HTTPError if it is refused."""
        with self._turn:
            conn = self._connection()
            try:
                conn.send((data, layout, colormap))
                reply = conn.recv()
            except (EOFError, OSError):
                self._forget(conn)
                if self._closed:
                    raise HTTPError(503, "the server is shutting down") from None
                raise RuntimeError("the upload worker process ended unexpectedly") from None
            finally:
                self._count_down()
        if reply[0] == "png":
            return reply[1]
        if reply[0] == "http":
            raise HTTPError(reply[1], reply[2])
        raise RuntimeError(f"upload failed: {reply[1]}")

    def _connection(self) -> Connection:
        with self._state:
            if self._closed:  # queued when the server closed: it must not hold the shutdown up
                raise HTTPError(503, "the server is shutting down")
            if self._process is None or not self._process.is_alive():
                from livedepth.inference.estimator import thread_count  # torch: loaded already where a model is served

                context = multiprocessing.get_context("spawn")
                parent, child = context.Pipe()
                self._process = context.Process(target=serve_uploads, name="livedepth-uploads", daemon=True,
                                                args=(child, self.estimator_settings, self.limits, self.stereo))
                self._process.start()
                child.close()
                self._conn = parent
                log.info("upload worker started (process %d: eager torch, %s, background CPU priority)",
                         self._process.pid, thread_count(self.estimator_settings.get("threads")))
            return self._conn

    def _count_down(self) -> None:
        """(Re)start the countdown after which the unused worker process ends."""
        with self._state:
            self._uses += 1
            if self._countdown is not None:
                self._countdown.cancel()
            self._countdown = None
            if not self._closed and self._process is not None:
                self._countdown = threading.Timer(self.idle_s, self._end_if_idle, (self._uses,))
                self._countdown.daemon = True
                self._countdown.start()

    def _end_if_idle(self, uses: int) -> None:
        """The countdown ran out: end the worker process, unless it has been used since."""
        if not self._turn.acquire(blocking=False):
            return  # an upload is running: it starts a new countdown when it ends
        try:
            with self._state:
                if uses != self._uses or self._closed or self._process is None:
                    return
                process, conn = self._process, self._conn
                self._process = self._conn = self._countdown = None
            if conn is not None:
                conn.close()  # the worker's wait for a request ends: it returns
            _end_process(process, CLOSE_WAIT_S)
            log.info("upload worker ended after %g s without an upload (process %d); the next upload starts "
                     "it again", self.idle_s, process.pid)
        finally:
            self._turn.release()

    def _forget(self, conn: Connection) -> None:
        """The worker behind ``conn`` is gone: the next upload starts another."""
        conn.close()
        with self._state:
            if self._conn is conn:
                self._conn = None
                if self._process is not None:
                    self._process.join(CLOSE_WAIT_S)
                    self._process = None

    def close(self) -> None:
        """End the worker process now: an upload in progress gets a 503."""
        with self._state:
            self._closed = True
            process, conn = self._process, self._conn
            if self._countdown is not None:
                self._countdown.cancel()
        if process is None:
            return
        _end_process(process, 0)  # an upload's forward may take seconds: do not wait for it
        if conn is not None and self._turn.acquire(blocking=False):  # else the upload in progress closes it
            conn.close()
            self._turn.release()


def _end_process(process: multiprocessing.process.BaseProcess, grace: float) -> None:
    """Give ``process`` ``grace`` seconds to end, then terminate it, then kill it; reap it."""
    process.join(grace)
    if process.is_alive():
        process.terminate()
        process.join(CLOSE_WAIT_S)
    if process.is_alive():
        process.kill()
        process.join()
