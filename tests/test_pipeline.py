"""The live pipeline with real threads, a real (small) model and real files; only the model is slowed."""

from __future__ import annotations

import threading
import time

import av
import numpy as np
import pytest


from support.clips import live_clip

from livedepth.render.colorize import Colorizer
from livedepth.core.errors import LivedepthError
from livedepth.inference.estimator import DepthEstimator
from livedepth.run.pipeline import LivePipeline
from livedepth.core.frames import Rendered
from livedepth.io.sinks import RecordSink, Sink
from livedepth.io.source import Source
from livedepth.io.sources import FileSource

STATS_KEYS = {
    "frames_captured", "frames_processed", "frames_dropped", "frames_shown",
    "fps_processed", "fps_captured", "latency_ms", "inference_ms", "wall_s",
}


class SlowEstimator(DepthEstimator):
    """The real estimator whose ``infer`` also sleeps, like a slower CPU would."""

    def __init__(self, *args, delay: float = 0.0, fail_at: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delay = delay
        self.fail_at = fail_at
        self.calls = 0

    def infer(self, batch, out_hw):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("model exploded\nsecond line")
        time.sleep(self.delay)
        return super().infer(batch, out_hw)


class CollectSink(Sink):
    def __init__(self) -> None:
        self.frames: list[Rendered] = []
        self.closed = False

    def write(self, rendered: Rendered) -> None:
        self.frames.append(rendered)

    def close(self) -> None:
        self.closed = True


def live_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("livedepth-")]


@pytest.fixture(scope="module")
def estimator_factory(weights_pt):
    return lambda **kw: SlowEstimator(weights=weights_pt, size=64, threads=1, **kw).load()


def test_realtime_file_with_a_slow_model_keeps_up_and_drops_the_rest(tmp_path, estimator_factory):
    fps, frames = 25.0, 75  # a 3 s clip
    clip = live_clip(tmp_path / "clip.mp4", frames, fps)
    sink = CollectSink()
    pipeline = LivePipeline(FileSource(clip, realtime=True), estimator_factory(delay=0.12),
                            Colorizer(normalize="stable"), [sink])
    stats = pipeline.run()

    assert set(stats) == STATS_KEYS
    assert stats["frames_captured"] == frames, "capture keeps the file's native rate: every frame is read"
    assert stats["frames_processed"] + stats["frames_dropped"] == stats["frames_captured"]
    ids = [f.frame.index for f in sink.frames]
    assert ids == sorted(set(ids)) and len(ids) == stats["frames_shown"]
    assert stats["frames_dropped"] > frames / 2, "a model slower than the camera must drop frames"
    # processed rate ~ inference rate (the model is the bottleneck, nothing else waits)
    inference_s = stats["inference_ms"]["p50"] / 1000
    assert 0.6 <= stats["fps_processed"] * inference_s <= 1.15, stats
    # newest frame only: latency is bounded by the model, not by a growing queue
    assert stats["latency_ms"]["p95"] <= 2 * stats["inference_ms"]["p95"] + 1000 / fps, stats
    assert 0.9 <= stats["wall_s"] / (frames / fps) <= 1.5, stats
    assert sink.closed and live_threads() == []


def test_file_on_demand_processes_every_frame_in_order(tmp_path, estimator_factory):
    clip = live_clip(tmp_path / "clip.mp4", 15, 30.0)
    sink = CollectSink()
    pipeline = LivePipeline(FileSource(clip), estimator_factory(), Colorizer(layout="side"), [sink])
    stats = pipeline.run()
    assert [f.frame.index for f in sink.frames] == list(range(15))
    assert stats["frames_processed"] == stats["frames_captured"] == stats["frames_shown"] == 15
    assert stats["frames_dropped"] == 0
    assert sink.frames[0].image.shape == (120, 320, 3)  # side layout of a 160x120 frame
    assert sink.frames[0].depth.shape == (120, 160) and sink.frames[0].depth.dtype == np.float32


def test_max_frames_and_record_sink_write_real_timestamps(tmp_path, estimator_factory):
    clip = live_clip(tmp_path / "clip.mp4", 50, 25.0)
    out = tmp_path / "rec.mp4"
    record = RecordSink(out, rate=25.0)
    pipeline = LivePipeline(FileSource(clip, realtime=True), estimator_factory(delay=0.05),
                            Colorizer(normalize="stable"), [record], max_frames=8)
    stats = pipeline.run()
    assert stats["frames_processed"] == 8 == stats["frames_shown"]
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
    assert len(decoded) == 8
    pts_ms = [float(f.pts * f.time_base * 1000) for f in decoded]
    assert pts_ms[0] == 0 and all(b > a for a, b in zip(pts_ms, pts_ms[1:]))
    # timestamps are capture times: frames of a 25 fps clip land on (about) 40 ms steps
    steps = np.diff(pts_ms) / 40.0
    assert np.all(np.abs(steps - np.round(steps)) < 0.5) and np.all(np.round(steps) >= 1)


def test_error_in_the_model_ends_the_run_with_one_line(tmp_path, estimator_factory):
    clip = live_clip(tmp_path / "clip.mp4", 200, 25.0)
    pipeline = LivePipeline(FileSource(clip, realtime=True), estimator_factory(fail_at=3), Colorizer())
    with pytest.raises(LivedepthError) as info:
        pipeline.run()
    assert str(info.value) == "live pipeline failed: RuntimeError: model exploded"
    assert live_threads() == []


class BrokenSource(Source):
    """Delivers a few frames, then the reader dies."""

    def __init__(self) -> None:
        self.count = 0
        self.released = False

    @property
    def fps(self) -> float:
        return 20.0

    def read(self, stop):
        self.count += 1
        if self.count > 4:
            raise OSError("device vanished")
        time.sleep(0.05)
        return np.full((48, 64, 3), self.count * 40, np.uint8)

    def release(self) -> None:
        self.released = True


def test_a_dead_reader_ends_the_run_instead_of_hanging(estimator_factory):
    source = BrokenSource()
    pipeline = LivePipeline(source, estimator_factory(), Colorizer())
    with pytest.raises(LivedepthError, match="OSError: device vanished"):
        pipeline.run()
    assert source.released and live_threads() == []


class EndlessSource(BrokenSource):
    def read(self, stop):
        stop.wait(0.04)
        return np.zeros((48, 64, 3), np.uint8)


def test_stop_from_another_thread_ends_every_stage(estimator_factory):
    source = EndlessSource()
    pipeline = LivePipeline(source, estimator_factory(delay=0.02), Colorizer())
    threading.Timer(1.0, pipeline.stop).start()
    stats = pipeline.run()
    assert pipeline.stop_reason == "stopped"
    assert stats["frames_processed"] > 0
    assert stats["frames_processed"] + stats["frames_dropped"] == stats["frames_captured"]
    assert source.released and live_threads() == []


def test_colorizer_can_be_swapped_while_running(estimator_factory):
    source = EndlessSource()
    sink = CollectSink()
    pipeline = LivePipeline(source, estimator_factory(), Colorizer(layout="depth"), [sink])

    def swap():
        pipeline.colorizer = Colorizer(layout="side")
        threading.Timer(0.6, pipeline.stop).start()

    threading.Timer(0.6, swap).start()
    pipeline.run()
    widths = {f.image.shape[1] for f in sink.frames}
    assert widths == {64, 128}


def test_max_fps_caps_the_processing_rate_and_drops_the_rest(tmp_path, estimator_factory):
    fps, frames, cap = 25.0, 100, 5.0  # a 4 s clip; the model alone would keep up with every frame
    clip = live_clip(tmp_path / "clip.mp4", frames, fps)
    sink = CollectSink()
    pipeline = LivePipeline(FileSource(clip, realtime=True), estimator_factory(), Colorizer(), [sink], max_fps=cap)
    stats = pipeline.run()
    assert stats["frames_captured"] == frames, "the cap slows inference, not capture"
    assert stats["frames_processed"] + stats["frames_dropped"] == stats["frames_captured"]
    assert stats["frames_shown"] == stats["frames_processed"] > 0
    assert stats["fps_processed"] <= cap * 1.1, stats
    assert 1000 / stats["inference_ms"]["p50"] > 2 * cap, "the model must be faster than the cap for this test"
    assert live_threads() == []


def test_stop_is_prompt_while_waiting_for_the_fps_cap(estimator_factory):
    source = EndlessSource()
    pipeline = LivePipeline(source, estimator_factory(), Colorizer(), max_fps=0.01)
    threading.Timer(1.0, pipeline.stop).start()
    stats = pipeline.run()
    assert stats["frames_processed"] == 1  # the first frame, then a 100 s wait that stop() cuts short
    assert stats["wall_s"] < 50, stats  # not a speed limit: only a missed stop would take 100 s
    assert stats["frames_processed"] + stats["frames_dropped"] == stats["frames_captured"]
    assert source.released and live_threads() == []


def test_max_fps_must_not_be_negative(estimator_factory):
    with pytest.raises(ValueError, match="max_fps"):
        LivePipeline(EndlessSource(), estimator_factory(), Colorizer(), max_fps=-1)
