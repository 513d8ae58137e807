"""The convert pipeline's threads and queues, with a cheap stand-in for the network."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from support.clips import decoded_pts, make_clip

from livedepth.render.colorize import Colorizer
from livedepth.run.convert import Converter, partial_path
from livedepth.core.errors import LivedepthError
from livedepth.io.video import probe


def _depth(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32).mean(axis=2)


def test_queues_stay_bounded_and_no_frame_is_dropped(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, frames=60, audio="aac")
    out = tmp_path / "out.mp4"

    def slow(image):  # inference is the bottleneck: decode must wait for it
        time.sleep(0.01)
        return _depth(image)

    conv = Converter(src, out, probe(src), slow, Colorizer(normalize="stable"), queue_size=4)
    peaks = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            peaks.append((conv._decoded.pending, conv._rendered.pending))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = conv.run()
    finally:
        done.set()
        sampler.join()
    assert result.frames == 60 and decoded_pts(out) == decoded_pts(src)
    assert max(p[0] for p in peaks) <= 4 and max(p[1] for p in peaks) <= 4
    assert max(p[0] for p in peaks) >= 3  # the decoder ran ahead until the queue pushed back
    assert result.times.decode > 0 and result.times.encode > 0


def test_an_inference_error_stops_every_stage_and_removes_the_output(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, frames=40, audio="aac")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    calls = []

    def failing(image):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("boom")
        return _depth(image)

    before = threading.active_count()
    with pytest.raises(LivedepthError, match="conversion failed: RuntimeError: boom"):
        Converter(src, out_dir / "d.mp4", probe(src), failing, Colorizer(), raw=out_dir / "r.mkv").run()
    assert len(calls) == 5
    assert list(out_dir.iterdir()) == []
    assert threading.active_count() == before


def test_partial_name_keeps_the_extension(tmp_path):
    assert partial_path(tmp_path / "depth.mp4").name == "depth.partial.mp4"
    assert partial_path(tmp_path / "frames").name == "frames.partial"
