"""Temporal-consistency metric: known sequences and the ``livedepth metrics`` command."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from support.cli_helpers import assert_one_line_error, run_cli
from support.synthetic_scene import SceneClip, tc_by_mode

from livedepth.render.colorize import Colorizer, apply_colormap, colormap_names
from livedepth.render.metrics import ColormapDecoder, guess_colormap, temporal_consistency


@pytest.fixture(scope="module")
def clip() -> list[tuple[np.ndarray, np.ndarray]]:
    return list(SceneClip(width=320, height=240, frames_count=12, pan_px_per_frame=2.0, object_speed=6.0).frames())


def test_static_scene_with_identical_depth_is_zero(clip) -> None:
    frame, depth = clip[0]
    report = temporal_consistency([(frame, depth)] * 4)
    assert report.tc == 0.0 and report.pairs == 3 and report.valid_fraction == 1.0
    assert report.clipped_fraction is None  # float depth


def test_grows_with_per_frame_jitter_and_ignores_global_scale(clip) -> None:
    rng = np.random.default_rng(3)
    clean = temporal_consistency(clip).tc
    assert clean < 0.02  # ground truth moving with the scene is consistent
    jitter = [(f, d * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)) for f, d in clip]
    small = [(f, d * rng.uniform(0.95, 1.05)) for f, d in clip]
    assert temporal_consistency(jitter).tc > 10 * clean
    assert temporal_consistency(jitter).tc > temporal_consistency(small).tc > clean
    scaled = temporal_consistency([(f, 7.5 * d + 2.0) for f, d in clip]).tc
    assert scaled == pytest.approx(clean, rel=1e-5)


def test_stable_output_is_steadier_than_frame() -> None:
    """A panning scene with MiDaS-like per-frame gain/offset jitter (no object entering)."""
    pan = SceneClip(width=320, height=240, frames_count=12, pan_px_per_frame=2.0, object_speed=0.0).frames()
    rng = np.random.default_rng(5)
    jittered = [(f, d * rng.uniform(0.85, 1.15) + rng.uniform(-0.3, 0.3)) for f, d in pan]
    tc = tc_by_mode(jittered)
    assert tc["stable"].tc < 0.5 * tc["frame"].tc
    assert tc["stable"].clipped_fraction < 0.02 < tc["frame"].clipped_fraction


def test_uint8_clipped_fraction() -> None:
    frame = np.full((20, 20, 3), 128, np.uint8)
    depth = np.full((20, 20), 100, np.uint8)
    depth[0], depth[1, :10], depth[2, :10] = 0, 255, 255
    assert temporal_consistency([(frame, depth)] * 2).clipped_fraction == pytest.approx(0.1)


def test_colormap_decoding_is_exact_and_guessable() -> None:
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for name in ("inferno", "turbo", "gray", "jet"):
        bgr = apply_colormap(gray, name)
        assert (ColormapDecoder(name).decode(bgr) == gray).all()
        assert guess_colormap(bgr, colormap_names()) == name


def _write(path: Path, frames, pix_fmt: str, codec: str, to_format: str) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=10)
        h, w = frames[0].shape[:2]
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "12"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format=to_format)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_cli_side_video_and_raw_depth(tmp_path: Path, clip) -> None:
    colorizer = Colorizer(normalize="stable", layout="side", colormap="turbo")
    side = [colorizer.render(d, f) for f, d in clip]
    colorizer.reset()
    expected = temporal_consistency([(f, colorizer.normalize(d)) for f, d in clip])
    _write(tmp_path / "side.mp4", side, "yuv420p", "libx264", "bgr24")
    proc = run_cli("metrics", str(tmp_path / "side.mp4"))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert float(lines["TC"]) == pytest.approx(expected.tc, abs=0.03)  # H.264 noise on the colours
    assert float(lines["clipped"].rstrip("%")) / 100 == pytest.approx(expected.clipped_fraction, abs=0.01)
    assert lines["frames"].startswith("12 ")

    raw = [np.round(d / 3.0 * 65535).astype(np.uint16) for _, d in clip]
    _write(tmp_path / "depth.mkv", raw, "gray16le", "ffv1", "gray16le")
    _write(tmp_path / "rgb.mkv", [f for f, _ in clip], "bgr0", "ffv1", "bgr24")
    proc = run_cli("metrics", str(tmp_path / "depth.mkv"), "--rgb", str(tmp_path / "rgb.mkv"))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert float(lines["TC"]) == pytest.approx(temporal_consistency(clip).tc, abs=0.01)
    assert lines["clipped"] == "0.00%"

    assert_one_line_error(run_cli("metrics", str(tmp_path / "depth.mkv")), "--rgb")
    assert_one_line_error(run_cli("metrics", str(tmp_path / "missing.mp4")), "not found")
