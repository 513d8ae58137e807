"""``livedepth convert`` end to end: real subprocess, real files read back with PyAV."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from support.cli_helpers import assert_one_line_error, run_cli
from support.clips import audio_packets, decoded_pts, make_audio_only, make_clip, make_empty_video
from support.models import CHEAP_SIZE, MODELS, model_flags

from livedepth.io.rawdepth import DepthScale, load_scale
from livedepth.io.video import probe, read_frames

pytestmark = pytest.mark.slow  # integration: see the README's fast lane


def _convert(src: Path, out: Path, weights: Path, *extra: str):
    return run_cli("convert", str(src), str(out), "--weights", str(weights), *extra)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, model_weights):
    """``converted(model)``: a 29.97 fps clip with AAC audio converted once per model, with a raw .mkv export."""
    runs = {}

    def convert(model: str):
        if model not in runs:
            folder = tmp_path_factory.mktemp("ntsc")
            src, out, raw = folder / "in.mp4", folder / "out" / "depth.mp4", folder / "out" / "depth16.mkv"
            out.parent.mkdir()
            make_clip(src, frames=14, width=96, height=64, rate=Fraction(30000, 1001), audio="aac")
            proc = run_cli("convert", str(src), str(out), *model_flags(model, model_weights[model]), "--raw", str(raw))
            assert proc.returncode == 0, proc.stderr
            runs[model] = src, out, raw, proc
        return runs[model]

    return convert


@pytest.fixture(scope="module")
def ntsc(converted):
    return converted("midas-small")


@pytest.mark.parametrize("model", MODELS)
def test_round_trip_keeps_frames_timing_and_audio(converted, model):
    src, out, _, proc = converted(model)
    src_times, n_src = decoded_pts(src)
    out_times, n_out = decoded_pts(out)
    assert n_out == n_src == 14
    assert out_times == src_times
    assert probe(out).time_base == Fraction(1, 30000)
    assert audio_packets(out) == audio_packets(src) and len(audio_packets(src)) > 10
    with av.open(str(out)) as c:
        video = c.streams.video[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (video.codec_context.width, video.codec_context.height) == (96, 64)
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("converted 14 frames (0.47 s of video) in ") and "frames/s" in summary
    assert sorted(p.name for p in out.parent.iterdir()) == ["depth.mp4", "depth16.mkv", "depth16.mkv.json"]


def test_output_is_depth_not_the_input(ntsc):
    src, out, _, _ = ntsc
    first_in = next(read_frames(src)).image
    first_out = next(read_frames(out)).image
    assert first_out.shape == first_in.shape
    assert np.abs(first_out.astype(int) - first_in.astype(int)).mean() > 10


@pytest.mark.parametrize("model", MODELS)
def test_raw_mkv_maps_back_to_float_depth(converted, model_weights, model):
    from livedepth.app.estimator import build_estimator
    from livedepth.app.render import make_temporal
    from livedepth.settings import load_settings

    src, _, raw, _ = converted(model)
    meta = json.loads(raw.with_name(raw.name + ".json").read_text())
    scale = load_scale(raw)
    assert meta["formula"] == "depth = offset + value * step" and meta["frames"] == 14
    with av.open(str(raw)) as c:
        assert c.metadata["LIVEDEPTH_DEPTH_STEP"] == str(scale.step)
        stored = [f.to_ndarray() for f in c.decode(video=0)]
    assert len(stored) == 14 and stored[0].dtype == np.uint16
    size = {("model", "size"): CHEAP_SIZE[model]} if CHEAP_SIZE[model] else {}
    settings = load_settings("convert", flags={("model", "name"): model, **size})
    estimator = build_estimator(settings, model_weights[model])  # as the convert command builds it
    temporal = make_temporal(settings)  # on by default for video: the raw export is the filtered depth
    assert temporal is not None
    for frame, values in zip(read_frames(src), stored, strict=True):
        expected = temporal.update(estimator.predict(frame.image), frame.image)
        assert values.shape == expected.shape
        assert np.abs(scale.decode(values) - expected).max() <= scale.step
    assert 0 < stored[0].min() and stored[0].max() < 65535  # headroom on both sides


@pytest.mark.parametrize("model", MODELS)
def test_metrics_measures_the_raw_export_against_its_source(converted, model):
    from livedepth.render.metrics import temporal_consistency

    src, _, raw, _ = converted(model)
    proc = run_cli("metrics", str(raw), "--rgb", str(src))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    scale = load_scale(raw)
    with av.open(str(raw)) as c:
        depth = [scale.decode(f.to_ndarray()) for f in c.decode(video=0)]
    expected = temporal_consistency(list(zip((f.image for f in read_frames(src)), depth, strict=True)))
    assert float(lines["TC"]) == pytest.approx(expected.tc, abs=1e-3)  # the scale is affine: TC ignores it
    assert expected.tc > 0 and lines["frames"].startswith("14 ")


def test_vfr_side_layout_png_raw_and_no_audio(tmp_path, weights_pt):
    src = tmp_path / "vfr.mkv"
    make_clip(src, frames=10, width=64, height=48, rate=Fraction(25), time_base=Fraction(1, 1000),
              durations=[40, 33, 120, 17], audio="libmp3lame")
    out, raw = tmp_path / "out" / "side.mp4", tmp_path / "out" / "frames"
    out.parent.mkdir()
    proc = _convert(src, out, weights_pt, "--layout", "side", "--no-audio", "--raw", str(raw), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert decoded_pts(out) == decoded_pts(src)
    with av.open(str(out)) as c:
        assert not c.streams.audio
        assert (c.streams.video[0].width, c.streams.video[0].height) == (128, 48)
    pngs = sorted(raw.glob("*.png"))
    assert len(pngs) == 10
    image = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint16 and image.shape == (48, 64)
    assert isinstance(load_scale(raw), DepthScale)
    rows = (raw / "frames.csv").read_text().splitlines()
    assert rows[0] == "index,pts,seconds" and rows[4].split(",")[1] == str(40 + 33 + 120)


def test_odd_size_is_padded_and_said(tmp_path, weights_pt):
    src = tmp_path / "odd.mkv"
    make_clip(src, frames=4, width=65, height=47, codec="ffv1", audio=None)
    out = tmp_path / "odd.mp4"
    proc = _convert(src, out, weights_pt)
    assert proc.returncode == 0, proc.stderr
    assert "padding 65x47 to 66x48" in proc.stderr
    assert decoded_pts(out)[1] == 4 and probe(out).width == 66


def test_existing_output_is_not_clobbered(ntsc, weights_pt):
    src, out, _, _ = ntsc
    before = out.read_bytes()
    proc = _convert(src, out, weights_pt)
    assert_one_line_error(proc, "exists; use --overwrite")
    assert out.read_bytes() == before


def test_overwrite_replaces(tmp_path, weights_pt):
    src = tmp_path / "in.mp4"
    make_clip(src, frames=3, audio=None)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    proc = _convert(src, out, weights_pt, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert decoded_pts(out)[1] == 3


def _bad_input(kind: str, folder: Path) -> Path:
    path = folder / {"missing": "nope.mp4", "text": "notes.mp4", "audio": "song.m4a", "empty": "empty.mp4",
                     "truncated": "cut.mp4", "garbage": "garbage.mp4"}[kind]
    if kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "audio":
        make_audio_only(path)
    elif kind == "empty":
        make_empty_video(path)
    elif kind == "truncated":
        whole = folder / "whole.mp4"
        make_clip(whole, frames=12, audio="aac", options={"movflags": "faststart"})
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
        whole.unlink()
    elif kind == "garbage":  # a valid index, but every frame's data is noise
        make_clip(path, frames=12, audio=None, options={"movflags": "faststart"})
        data = bytearray(path.read_bytes())
        start = data.index(b"mdat") + 4
        data[start:] = bytes((j * 7) & 0xFF for j in range(start, len(data)))
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("missing", "input not found"),
        ("text", "not a video"),
        ("audio", "audio-only"),
        ("empty", "no video"),  # an mp4 whose video track has no frames
        ("garbage", "no video frames could be decoded"),
        ("truncated", "frame(s) skipped"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_left(tmp_path, weights_pt, kind, fragment):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    src = _bad_input(kind, inputs)
    proc = _convert(src, outputs / "depth.mp4", weights_pt, "--raw", str(outputs / "raw.mkv"))
    assert_one_line_error(proc, fragment)
    assert list(outputs.iterdir()) == []


def test_truncated_input_kept_with_keep_damaged(tmp_path, weights_pt):
    src = _bad_input("truncated", tmp_path)
    out = tmp_path / "out.mp4"
    proc = _convert(src, out, weights_pt, "--keep-damaged")
    assert proc.returncode == 0, proc.stderr
    n = decoded_pts(out)[1]
    assert 0 < n < 12
    assert f"kept the {n} decodable frames" in proc.stderr and "skipped" in proc.stderr


@pytest.mark.parametrize("flags, fragment", [(["--crf", "60"], "--crf 60: must be from 0 to 51"),
                                             (["--preset", "warp"], "--preset warp: must be one of ultrafast")])
def test_bad_flags(tmp_path, weights_pt, flags, fragment):
    src = tmp_path / "in.mp4"
    make_clip(src, frames=2, audio=None)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert_one_line_error(_convert(src, out_dir / "d.mp4", weights_pt, *flags), fragment)
    assert list(out_dir.iterdir()) == []


def test_unwritable_output_folder(tmp_path, weights_pt):
    src = tmp_path / "in.mp4"
    make_clip(src, frames=2, audio=None)
    if os.geteuid() == 0:
        target = Path("/proc/livedepth-depth.mp4")  # root ignores permission bits; /proc refuses files
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        target = locked / "d.mp4"
    assert_one_line_error(_convert(src, target, weights_pt), "not writable")
    assert not target.exists()
    assert_one_line_error(_convert(src, tmp_path / "no" / "such" / "d.mp4", weights_pt), "does not exist")


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_output_plays_in_a_browser(ntsc):
    from playwright.sync_api import sync_playwright

    _, out, _, _ = ntsc
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(out.as_uri())  # Chromium's own player page: one <video> element
            page.wait_for_function(
                "() => { const v = document.querySelector('video'); return v && (v.readyState >= 2 || v.error); }",
                timeout=30000,
            )
            state = page.evaluate(
                """() => new Promise(done => { const v = document.querySelector('video');
                    if (v.error) return done({error: v.error.code});
                    const size = [v.videoWidth, v.videoHeight], duration = v.duration;
                    v.onseeked = () => done({size, duration, readyState: v.readyState});
                    v.currentTime = duration * 0.9; })"""
            )
        finally:
            browser.close()
    assert "error" not in state, state
    assert state["size"] == [96, 64] and state["readyState"] >= 2
    assert abs(state["duration"] - 14 * 1001 / 30000) < 0.1
