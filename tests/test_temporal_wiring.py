"""The temporal filter in the video paths: convert (colours and --raw), the live pipeline; never photos."""

from __future__ import annotations

import av
import numpy as np
import pytest
from support.clips import live_clip, make_clip
from support.cli_helpers import run_cli
from support.models import MODELS, model_flags

from livedepth.render.colorize import Colorizer
from livedepth.inference.estimator import DepthEstimator
from livedepth.core.frames import Rendered
from livedepth.run.pipeline import LivePipeline
from livedepth.io.sinks import Sink
from livedepth.io.sources import FileSource
from livedepth.render.temporal import TemporalFilter


def _raw_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray() for f in container.decode(video=0)]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_convert_raw_export_is_the_filtered_depth(tmp_path, model_weights, model):
    src = tmp_path / "in.mp4"
    make_clip(src, frames=8, width=96, height=64, audio=None)
    raws = {}
    for mode in ("on", "off"):
        raw = tmp_path / f"{mode}.mkv"
        proc = run_cli("convert", str(src), str(tmp_path / f"{mode}.mp4"), "--temporal", mode, "--raw", str(raw),
                       *model_flags(model, model_weights[model], size=64))
        assert proc.returncode == 0, proc.stderr
        raws[mode] = _raw_frames(raw)
    assert len(raws["on"]) == len(raws["off"]) == 8
    np.testing.assert_array_equal(raws["on"][0], raws["off"][0])  # no history yet: the frame as it is
    assert any(not np.array_equal(a, b) for a, b in zip(raws["on"][1:], raws["off"][1:], strict=True))


@pytest.mark.slow
def test_image_has_no_temporal_flag(tmp_path):
    proc = run_cli("image", "x.png", str(tmp_path / "o.png"), "--temporal", "on")
    assert proc.returncode == 2 and "unrecognized arguments: --temporal" in proc.stderr


class Collect(Sink):
    def __init__(self) -> None:
        self.frames: list[Rendered] = []

    def write(self, rendered: Rendered) -> None:
        self.frames.append(rendered)


def test_live_pipeline_filters_in_the_output_stage(tmp_path, weights_pt):
    clip = live_clip(tmp_path / "clip.mp4", 10, 25.0)
    estimator = DepthEstimator(weights=weights_pt, size=64, threads=1).load()
    depths = {}
    for name, temporal in (("on", TemporalFilter()), ("off", None)):
        sink = Collect()
        LivePipeline(FileSource(clip), estimator, Colorizer(), [sink], temporal=temporal).run()
        depths[name] = [f.depth for f in sink.frames]
    assert len(depths["on"]) == len(depths["off"]) == 10
    assert all(a.shape == b.shape and a.dtype == np.float32 for a, b in zip(depths["on"], depths["off"], strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(depths["on"][1:], depths["off"][1:], strict=True))
