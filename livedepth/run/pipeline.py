"""The live pipeline: capture thread -> newest frame -> inference thread -> output stage.

The output stage (rendering and the sinks, the OpenCV window among them) runs on the calling
thread, because OpenCV GUI calls must run on the main thread. Every stage ends at the end of
the input, on ``stop()`` (a sink's quit key, or the caller mapping a signal to it) or when a
stage fails; the failure is raised as one line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from livedepth.core.frames import Frame, Rendered
from livedepth.core.predictor import Predictor
from livedepth.io.sinks import Sink
from livedepth.io.source import Source
from livedepth.run.capture import Capture
from livedepth.core.stages import POLL_S, Channel, Latest, Stages

log = logging.getLogger(__name__)

#: Latency/inference samples kept for percentiles (bounded memory on long runs).
MAX_SAMPLES = 10_000


class LiveStats:
    """Counters and timings of a live run; ``snapshot()`` is safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_captured = 0
        self.frames_processed = 0
        self.frames_dropped = 0
        self.frames_shown = 0
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
        """Set counters (``frames_captured``, ``frames_dropped``) to these values."""
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

    def status_line(self) -> str:
        """``F fps | latency L ms | dropped D``, for an on-screen overlay."""
        return f"{self.recent_fps():.1f} fps | latency {self.last_latency_ms():.0f} ms | dropped {self.frames_dropped}"

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


@dataclass
class _Limits:
    max_frames: int | None
    interval: float  # seconds between frames taken; 0 = no cap


class LivePipeline:
    """Capture -> inference -> output for one source.

    ``sinks`` receive every rendered frame on the thread that calls :meth:`run`; more can be
    added with :meth:`add_sink` before the run. ``colorizer`` may be changed while running (the
    web page and the window's keys do). ``max_frames`` ends the run after that many processed
    frames; ``max_fps`` caps the processing rate (``None`` or 0: as fast as the model goes).
    ``temporal`` (a :class:`~livedepth.render.temporal.TemporalFilter`) filters the depth of each
    processed frame, in the output stage (so it overlaps the next forward). ``stop()`` ends
    the run from any thread; ``abort()`` also drops the frame in flight.
    """

    def __init__(
        self,
        source: Source,
        estimator: Predictor,
        colorizer,
        sinks: Sequence[Sink] = (),
        *,
        max_frames: int | None = None,
        max_fps: float | None = None,
        temporal=None,
    ) -> None:
        if max_fps is not None and not max_fps >= 0:
            raise ValueError(f"max_fps must be >= 0, got {max_fps}")
        self.source = source
        self.estimator = estimator
        self.colorizer = colorizer
        self.temporal = temporal
        self.sinks = list(sinks)
        self.limits = _Limits(max_frames, 1.0 / max_fps if max_fps else 0.0)
        self.stats = LiveStats()
        self.stages = Stages("live pipeline")
        self._holder: Latest[Frame] = Latest()
        self._results: Channel[tuple[Frame, np.ndarray]] = Channel(1)
        self._aborted = 0  # frames taken but never processed (an error, or taken while stopping)

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def stop(self, reason: str = "stopped") -> None:
        """Ask every stage to end (thread-safe, idempotent)."""
        self.stages.stop(reason)

    def abort(self, reason: str = "aborted") -> None:
        """End now: the frame in flight is dropped and the output stage returns at once."""
        self.stages.abort(reason)

    @property
    def stop_reason(self) -> str | None:
        return self.stages.reason

    def run(self) -> dict:
        """Run until the end of input, ``stop()`` or an error; returns ``stats.snapshot()``.

        Raises :class:`~livedepth.core.errors.LivedepthError` (one line) when a stage failed.
        """
        capture = Capture(self.source, self._holder, self.stages.stop_event)
        self.stats.start()
        try:
            self.stages.start("capture", capture.run, on_exit=capture.close)
            self.stages.start("inference", self._infer_loop, on_exit=self._end_inference)
            self._output_loop(capture)
        except Exception as exc:  # noqa: BLE001 - a sink failed: raised below as one line
            self.stages.fail(exc)
        finally:
            self.stages.stop("end")
            self._holder.close()
            self._results.leave()
            self.stages.join()
            self._close_sinks()
            self._holder.close(drop=True)
            self.stats.update(frames_captured=capture.captured, frames_dropped=self._dropped())
            self.stats.end()
        self.stages.raise_error()
        return self.stats.snapshot()

    def _dropped(self) -> int:
        return self._holder.dropped + self._aborted

    def _infer_loop(self) -> None:
        stop, limits = self.stages.stop_event, self.limits
        next_take = 0.0
        while not stop.is_set():
            if limits.interval and stop.wait(max(0.0, next_take - time.monotonic())):
                return
            frame = self._holder.take(timeout=0.5)
            if frame is None:
                if self._holder.closed:
                    return
                continue
            if stop.is_set():  # woken by the shutdown: do not start another forward
                self._aborted += 1
                return
            next_take = time.monotonic() + limits.interval
            depth = self._infer(frame)
            if not self._results.put((frame, depth)):
                return
            if limits.max_frames is not None and self.stats.frames_processed >= limits.max_frames:
                return

    def _end_inference(self) -> None:
        self._holder.close()  # no more takers: the capture stage ends too
        self._results.finish()

    def _infer(self, frame: Frame) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            depth = self.estimator.predict(frame.image)
        except BaseException:
            self._aborted += 1
            raise
        self.stats.add_inference((time.perf_counter() - t0) * 1000.0)
        return depth

    def _output_loop(self, capture: Capture) -> None:
        intervals = [s.poll_interval for s in self.sinks if s.poll_interval is not None]
        poll_s = min(intervals, default=POLL_S)
        while not self.stages.stopping:
            try:
                item = self._results.get(timeout=poll_s)
            except EOFError:
                return
            if item is not None:
                self._show(*item)
            self.stats.update(frames_captured=capture.captured, frames_dropped=self._dropped())
            for sink in self.sinks:
                sink.poll()

    def _show(self, frame: Frame, depth: np.ndarray) -> None:
        if self.temporal is not None:  # here, not after the forward: it overlaps the next forward
            depth = self.temporal.update(depth, frame.image)
        near = self.colorizer.near_gray(depth)
        rendered = Rendered(frame, depth, self.colorizer.render(depth, frame.image, near), near)
        for sink in self.sinks:
            sink.write(rendered)
        self.stats.add_shown(frame.captured_at)

    def _close_sinks(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - closing the others matters more
                log.warning("closing %s failed: %s", type(sink).__name__, exc)
