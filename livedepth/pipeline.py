"""The live pipeline: capture thread -> newest frame -> inference thread -> output stage.

The output stage (rendering, sinks, the OpenCV window) runs on the calling (main) thread,
because OpenCV GUI calls must. Every stage ends on end of input, ``stop()``, ``q``/Esc,
window close, Ctrl+C or SIGTERM, and an error in any stage ends the run with one line.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence

import numpy as np

from livedepth.errors import LivedepthError
from livedepth.sinks import RenderedFrame, Sink
from livedepth.sources import CaptureThread, Frame, LatestFrame, Source

log = logging.getLogger(__name__)

#: Marks the end of the inference thread's output; always sent, in ``finally``.
SENTINEL = object()
#: Latency/inference samples kept for percentiles (bounded memory on long runs).
MAX_SAMPLES = 10_000
#: How long ``run`` waits for a thread to end after a stop before giving up on it.
JOIN_TIMEOUT_S = 15.0


class LiveStats:
    """Counters and timings of a live run; ``snapshot()`` is safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_captured = 0
        self.frames_processed = 0
        self.frames_dropped = 0
        self.frames_shown = 0
        self.duplicates_processed = 0
        self._latency_ms: deque[float] = deque(maxlen=MAX_SAMPLES)
        self._inference_ms: deque[float] = deque(maxlen=MAX_SAMPLES)
        self._shown_at: deque[float] = deque(maxlen=32)
        self.started_at: float | None = None
        self.ended_at: float | None = None

    def start(self) -> None:
        with self._lock:
            self.started_at = time.monotonic()

    def end(self) -> None:
        with self._lock:
            self.ended_at = time.monotonic()

    def add_inference(self, ms: float) -> None:
        with self._lock:
            self.frames_processed += 1
            self._inference_ms.append(ms)

    def add_shown(self, captured_at: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.frames_shown += 1
            self._latency_ms.append((now - captured_at) * 1000.0)
            self._shown_at.append(now)

    def update(self, **counters: int) -> None:
        with self._lock:
            for key, value in counters.items():
                setattr(self, key, value)

    def recent_fps(self) -> float:
        """Shown frames per second over the last few frames (for the on-screen overlay)."""
        with self._lock:
            if len(self._shown_at) < 2:
                return 0.0
            span = self._shown_at[-1] - self._shown_at[0]
            return (len(self._shown_at) - 1) / span if span > 0 else 0.0

    def last_latency_ms(self) -> float:
        with self._lock:
            return self._latency_ms[-1] if self._latency_ms else 0.0

    def snapshot(self) -> dict:
        """The run's statistics, as written by ``--stats``."""
        with self._lock:
            end = self.ended_at or time.monotonic()
            wall = end - self.started_at if self.started_at is not None else 0.0
            return {
                "frames_captured": self.frames_captured,
                "frames_processed": self.frames_processed,
                "frames_dropped": self.frames_dropped,
                "frames_shown": self.frames_shown,
                "duplicates_processed": self.duplicates_processed,
                "fps_processed": self.frames_processed / wall if wall > 0 else 0.0,
                "fps_captured": self.frames_captured / wall if wall > 0 else 0.0,
                "latency_ms": _percentiles(self._latency_ms),
                "inference_ms": _percentiles(self._inference_ms),
                "wall_s": wall,
            }


def _percentiles(samples: deque[float]) -> dict[str, float]:
    if not samples:
        return {"p50": 0.0, "p95": 0.0}
    p50, p95 = np.percentile(np.fromiter(samples, float), [50, 95])
    return {"p50": float(p50), "p95": float(p95)}


class _InferenceThread(threading.Thread):
    """Takes the newest frame, runs the model, hands (frame, depth) to the output stage.

    With ``max_fps`` it takes a frame no sooner than ``1 / max_fps`` after the previous one,
    sleeping on the stop event; frames captured meanwhile are replaced (dropped) as usual.
    """

    def __init__(self, pipeline: LivePipeline) -> None:
        super().__init__(name="livedepth-inference", daemon=True)
        self.p = pipeline
        self.error: BaseException | None = None
        self.aborted = 0  # frames taken but never processed (an error, or taken while stopping)

    def run(self) -> None:
        p = self.p
        last_id = -1
        interval = 1.0 / p.max_fps if p.max_fps else 0.0
        next_take = 0.0
        try:
            while not p._stop.is_set():
                if interval and p._stop.wait(max(0.0, next_take - time.monotonic())):
                    break
                frame = p._holder.take(timeout=0.5)
                if frame is None:
                    if p._holder.closed:
                        break
                    continue
                if p._stop.is_set():  # woken by the shutdown: do not start another forward
                    self.aborted += 1
                    break
                if frame.frame_id <= last_id:
                    p.stats.update(duplicates_processed=p.stats.duplicates_processed + 1)
                    continue
                last_id = frame.frame_id
                next_take = time.monotonic() + interval
                self._hand_over((frame, self._infer(frame)))
                if p.max_frames is not None and p.stats.frames_processed >= p.max_frames:
                    break
        except BaseException as exc:  # noqa: BLE001 - reported by the pipeline
            self.error = exc
        finally:
            p._holder.close()  # no more takers: the capture thread ends too
            _send_sentinel(p._results, p._stop)

    def _infer(self, frame: Frame) -> np.ndarray:
        estimator = self.p.estimator
        t0 = time.perf_counter()
        try:
            depth = estimator.infer(estimator.preprocess(frame.image), frame.image.shape[:2])
        except BaseException:
            self.aborted += 1
            raise
        self.p.stats.add_inference((time.perf_counter() - t0) * 1000.0)
        return depth

    def _hand_over(self, item: tuple[Frame, np.ndarray]) -> None:
        while not self.p._stop.is_set():
            try:
                self.p._results.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


def _send_sentinel(q: queue.Queue, stop: threading.Event) -> None:
    """Put the sentinel after the queued results; once stopping (consumer may be gone), make room."""
    while True:
        try:
            q.put(SENTINEL, timeout=0.1)
            return
        except queue.Full:
            if stop.is_set():
                try:
                    q.get_nowait()
                except queue.Empty:
                    pass


class LivePipeline:
    """Capture -> inference -> output for one source.

    ``sinks`` receive every shown :class:`RenderedFrame` on the main thread; ``display`` (a
    :class:`livedepth.display.DisplaySink`) also gets the overlay and its keys are handled here.
    ``colorizer`` may be replaced or changed at runtime. ``max_frames`` ends the run after that
    many processed frames; ``max_fps`` caps the processing rate (``None`` or 0: as fast as the
    model goes), to leave CPU for other work.
    """

    def __init__(
        self,
        source: Source,
        estimator,
        colorizer,
        sinks: Sequence[Sink] = (),
        *,
        display=None,
        max_frames: int | None = None,
        max_fps: float | None = None,
        handle_signals: bool = True,
    ) -> None:
        if max_fps is not None and not max_fps >= 0:
            raise LivedepthError(f"the FPS cap must be positive, got {max_fps}")
        self.source = source
        self.estimator = estimator
        self.colorizer = colorizer
        self.sinks = list(sinks)
        self.display = display
        self.max_frames = max_frames
        self.max_fps = max_fps or None
        self.handle_signals = handle_signals
        self.stats = LiveStats()
        self.stop_reason: str | None = None
        self._stop = threading.Event()
        self._holder = LatestFrame()
        self._results: queue.Queue = queue.Queue(maxsize=1)

    def stop(self, reason: str = "stopped") -> None:
        """Ask every stage to end (thread-safe, idempotent)."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> dict:
        """Run until end of input, quit, a signal or an error; returns ``stats.snapshot()``.

        Raises :class:`LivedepthError` (one line) when a stage failed.
        """
        capture = CaptureThread(self.source, self._holder, self._stop)
        inference = _InferenceThread(self)
        restore = self._install_signals()
        self.stats.start()
        error: BaseException | None = None
        try:
            capture.start()
            inference.start()
            self._output_loop(capture)
        except KeyboardInterrupt:
            self.stop("interrupted")
        except BaseException as exc:  # noqa: BLE001 - reported below
            error = exc
        finally:
            self.stop(self.stop_reason or "end")
            self._holder.close()
            for thread in (inference, capture):
                if thread.is_alive():
                    thread.join(JOIN_TIMEOUT_S)
                if thread.is_alive():
                    log.warning("%s did not end within %.0f s", thread.name, JOIN_TIMEOUT_S)
            error = error or inference.error or capture.error
            self._close_sinks()
            restore()
            self._holder.drain()
            self.stats.update(
                frames_captured=capture.captured,
                frames_dropped=self._holder.dropped + inference.aborted,
            )
            self.stats.end()
        if error is not None:
            raise _one_line(error)
        return self.stats.snapshot()

    def _output_loop(self, capture: CaptureThread) -> None:
        poll_s = 0.01 if self.display is not None else 0.1
        while not self._stop.is_set():
            try:
                item = self._results.get(timeout=poll_s)
            except queue.Empty:
                item = None
            if item is SENTINEL:
                self.stop(self.stop_reason or "end")
                return
            if item is not None:
                self._show(*item)
            self.stats.update(frames_captured=capture.captured, frames_dropped=self._holder.dropped)
            if self.display is not None:
                self._handle_key(self.display.poll())

    def _show(self, frame: Frame, depth: np.ndarray) -> None:
        colorizer = self.colorizer
        rendered = RenderedFrame(
            image=colorizer.render(depth, frame.image),
            depth=depth,
            source=frame.image,
            frame_id=frame.frame_id,
            captured_at=frame.captured_at,
        )
        for sink in self.sinks:
            sink.write(rendered)
        if self.display is not None:
            self.display.show(rendered, self._status_line())
        self.stats.add_shown(frame.captured_at)

    def _status_line(self) -> str:
        s = self.stats
        dropped = self._holder.dropped
        return f"{s.recent_fps():.1f} fps | latency {s.last_latency_ms():.0f} ms | dropped {dropped}"

    def _handle_key(self, action: str | None) -> None:
        if action == "quit":
            self.stop("quit")
        elif action == "colormap":
            log.info("colormap: %s", self.colorizer.cycle_colormap())
        elif action == "layout":
            log.info("layout: %s", self.colorizer.cycle_layout())

    def _close_sinks(self) -> None:
        for sink in [*self.sinks, *([self.display] if self.display is not None else [])]:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - closing the others matters more
                log.warning("closing %s failed: %s", type(sink).__name__, exc)

    def _install_signals(self):
        """Ctrl+C and SIGTERM stop the run cleanly (main thread only); returns the restorer."""
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, _frame) -> None:
            self.stop("interrupted" if signum == signal.SIGINT else "terminated")

        for sig in previous:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


def _one_line(exc: BaseException) -> LivedepthError:
    if isinstance(exc, LivedepthError):
        return exc
    log.debug("live pipeline failed", exc_info=exc)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return LivedepthError(f"live pipeline failed: {type(exc).__name__}{': ' + detail if detail else ''}")
