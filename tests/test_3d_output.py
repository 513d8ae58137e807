"""3D output end to end: the 3D layouts through convert (timestamps, audio, sizes), point clouds
(PLY files parsed back with numpy) from ``image``, ``convert --ply`` and the library, and the
``[stereo]`` / ``[pointcloud]`` settings' one-line errors."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from support.cli_helpers import assert_config_refused, assert_image_flags_refused, assert_one_line_error, run_cli
from support.clips import audio_packets, decoded_pts, make_clip
from support.golden import TEST_IMAGE
from support.models import MODELS, model_flags
from support.ply_reader import read_ply

from livedepth.app.render import build_colorizer
from livedepth.render.colorize import Colorizer
from livedepth.run.convert import Converter
from livedepth.app.image import read_image
from livedepth.io.pointcloud import Camera
from livedepth.settings import load_settings
from livedepth.core.vocab import STEREO_LAYOUTS
from livedepth.io.video import probe, read_frames


def _depth(image: np.ndarray) -> np.ndarray:
    """A cheap stand-in for the network: brighter is nearer."""
    return image.astype(np.float32).mean(axis=2)


@pytest.mark.parametrize("layout", STEREO_LAYOUTS)
def test_convert_keeps_timestamps_and_audio_with_every_3d_layout(tmp_path: Path, layout: str) -> None:
    src, out = tmp_path / "odd.mkv", tmp_path / f"{layout}.mp4"
    make_clip(src, frames=8, width=65, height=47, rate=Fraction(25), time_base=Fraction(1, 1000),
              durations=[40, 33, 120, 17], codec="ffv1", audio="aac")
    result = Converter(src, out, probe(src), _depth, Colorizer(layout=layout, normalize="stable")).run()
    assert result.frames == 8
    assert decoded_pts(out) == decoded_pts(src)
    assert audio_packets(out) == audio_packets(src) and len(audio_packets(src)) > 5
    expected = {"sbs": (130, 48), "half-sbs": (66, 48), "tab": (66, 94), "half-tab": (66, 48),
                "anaglyph": (66, 48), "rgbd": (130, 48)}[layout]  # odd sides padded to even by the writer
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == expected
    first_in, first_out = next(read_frames(src)).image, next(read_frames(out)).image
    if layout in ("sbs", "rgbd"):  # the left eye (or the colour half) is the picture, not depth colours
        assert np.abs(first_out[:47, :65].astype(int) - first_in).mean() < 12


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_cli_convert_sbs_with_point_clouds(tmp_path: Path, model_weights: dict[str, Path], model: str) -> None:
    src, out, clouds = tmp_path / "in.mp4", tmp_path / "sbs_LR.mp4", tmp_path / "clouds"
    make_clip(src, frames=7, width=64, height=48, audio="aac")
    proc = run_cli("convert", str(src), str(out), "--layout", "sbs", "--divergence", "3", "--convergence", "0.4",
                   "--swap-eyes", "--ply", str(clouds), "--ply-every", "3", "--fov", "90",
                   *model_flags(model, model_weights[model]))
    assert proc.returncode == 0, proc.stderr
    assert decoded_pts(out) == decoded_pts(src) and audio_packets(out) == audio_packets(src)
    assert probe(out).width == 128
    assert sorted(p.name for p in clouds.iterdir()) == ["000000.ply", "000003.ply", "000006.ply"]
    header, points = read_ply((clouds / "000003.ply").read_bytes())
    assert points.size == 64 * 48 and "fov 90" in " ".join(header)
    assert 1.0 <= points["z"].min() and points["z"].max() <= 10.0 + 1e-4
    # a second run refuses to mix its clouds with the first's
    proc = run_cli("convert", str(src), str(tmp_path / "again.mp4"), "--ply", str(clouds),
                   *model_flags(model, model_weights[model]))
    assert_one_line_error(proc, "already holds point clouds; use --overwrite")


@pytest.mark.slow
def test_image_writes_a_point_cloud(tmp_path: Path, weights_pt: Path) -> None:
    from livedepth.inference.estimator import DepthEstimator

    out = tmp_path / "cloud.ply"
    proc = run_cli("image", str(TEST_IMAGE), str(out), "--fov", "70", "--depth-ratio", "5",
                   "--weights", str(weights_pt))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cloud.ply"]
    header, points = read_ply(out.read_bytes())
    assert [line.split()[-1] for line in header if line.startswith("property")] == \
        ["x", "y", "z", "red", "green", "blue"]
    image = read_image(TEST_IMAGE)
    h, w = image.shape[:2]
    assert points.size == h * w  # every pixel has a finite depth here
    depth = DepthEstimator(weights=weights_pt, threads=1).load().predict(image)
    nearest, farthest = np.argmax(depth), np.argmin(depth)  # row-major: the points keep the pixel order
    assert points["z"][nearest] < points["z"][farthest]
    assert points["z"].min() == pytest.approx(1.0, abs=1e-3) and points["z"].max() == pytest.approx(5.0, rel=1e-3)
    rgb = np.stack([points["red"], points["green"], points["blue"]], 1)
    assert (rgb == image.reshape(-1, 3)[:, ::-1]).all()
    # the pinhole: the right edge sees tan(35 deg) of the way out, per unit of distance
    right_edge = points.reshape(h, w)[:, -1]
    slope = (right_edge["x"] / right_edge["z"]).mean()
    assert slope == pytest.approx((w - 1) / w * math.tan(math.radians(35)), rel=1e-3)


def test_the_cloud_maps_inverse_depth_and_masks_invalid_pixels() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    near = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (6, 1))
    near[2, 3] = np.nan
    _, points = read_ply(Camera(fov=60, depth_ratio=4).ply(frame, near))
    assert points.size == 6 * 8 - 1
    keep = np.isfinite(near).ravel()
    n = near.ravel()[keep]
    assert np.allclose(1 / points["z"], n + (1 - n) / 4, atol=1e-6)  # linear in inverse distance, 1 .. 4
    assert (points["blue"] == frame.reshape(-1, 3)[keep, 0]).all()
    assert (points["red"] == frame.reshape(-1, 3)[keep, 2]).all()
    assert (points["y"][:8] < 0).all() and (points["y"][-8:] > 0).all()  # y points down (OpenCV's camera axes)
    with pytest.raises(ValueError):
        Camera(depth_ratio=1)


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--divergence", "11"], "--divergence 11: must be from 0 to 10"),
    (["--convergence", "1.5"], "--convergence 1.5: must be from 0 to 1"),
    (["--anaglyph", "blue"], "--anaglyph blue: must be one of dubois, color, gray"),
    (["--stereo-size", "-2"], "--stereo-size -2: must be at least 0"),
    (["--fov", "180"], "--fov 180: must be from 1 to 179"),
    (["--depth-ratio", "1"], "--depth-ratio 1: must be greater than 1"),
    (["--layout", "3d"], "--layout 3d: must be one of depth, side, overlay, blur, sbs, half-sbs, tab, half-tab, "
                         "anaglyph, rgbd"),
])
def test_bad_3d_flags_are_one_line_errors(tmp_path: Path, flags: list[str], message: str) -> None:
    assert_image_flags_refused(tmp_path, flags, message)


@pytest.mark.parametrize("toml, message", [
    ("[stereo]\ndivergence = 12\n", "[stereo] divergence = 12: must be from 0 to 10"),
    ("[stereo]\nconvergence = -0.5\n", "[stereo] convergence = -0.5: must be from 0 to 1"),
    ('[stereo]\nswap_eyes = "yes"\n', '[stereo] swap_eyes = "yes": expected true or false'),
    ("[stereo]\nsize = 1.5\n", "[stereo] size = 1.5: expected a whole number"),
    ("[pointcloud]\nfov = 0\n", "[pointcloud] fov = 0: must be from 1 to 179"),
    ("[stereo]\ndivergance = 2\n", "unknown key [stereo] divergance (did you mean [stereo] divergence?)"),
])
def test_bad_3d_settings_are_one_line_errors(tmp_path: Path, toml: str, message: str) -> None:
    assert_config_refused(tmp_path, toml, message)


def test_3d_settings_reach_the_colorizer(tmp_path: Path) -> None:
    config = tmp_path / "vr.toml"
    config.write_text('[render]\nlayout = "half-sbs"\n[stereo]\ndivergence = 4\nconvergence = 0.25\n'
                      'anaglyph = "gray"\nswap_eyes = true\nsize = 320\n')
    settings = load_settings(config)
    colorizer = build_colorizer(settings.render, settings.stereo)
    warp = colorizer.stereo.warp
    assert (warp.divergence, warp.convergence, warp.size) == (4.0, 0.25, 320)
    assert colorizer.stereo.anaglyph == "gray" and colorizer.stereo.swap_eyes and colorizer.layout == "half-sbs"


@pytest.mark.slow
def test_point_clouds_need_one_input_video(tmp_path: Path) -> None:
    for name in ("a.mp4", "b.mp4"):
        make_clip(tmp_path / name, frames=2, audio=None)
    proc = run_cli("convert", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4"), str(tmp_path / "out"),
                   "--ply", str(tmp_path / "clouds"))
    assert_one_line_error(proc, "--ply takes one input video")


@pytest.mark.slow
def test_live_records_a_3d_layout(tmp_path: Path, weights_pt: Path) -> None:
    from support.clips import live_clip

    clip, out = live_clip(tmp_path / "clip.mp4", 20, 25.0), tmp_path / "tab.mp4"
    proc = run_cli("live", "--input", str(clip), "--no-display", "--max-frames", "4", "--threads", "1",
                   "--layout", "tab", "--stereo-size", "80", "--record", str(out), "--weights", str(weights_pt))
    assert proc.returncode == 0, proc.stderr
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 4 and (frames[0].width, frames[0].height) == (160, 240)


@pytest.mark.slow
def test_a_batch_converts_every_file_in_a_3d_layout(tmp_path: Path, weights_pt: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    (inputs / "sub").mkdir(parents=True)
    make_clip(inputs / "a.mp4", frames=3, width=64, height=48, audio="aac")
    make_clip(inputs / "sub" / "b.mkv", frames=3, width=63, height=47, codec="ffv1", audio=None)
    proc = run_cli("convert", str(inputs), str(out), "--layout", "half-sbs", "--size", "64", "--threads", "1",
                   "--weights", str(weights_pt))
    assert proc.returncode == 0, proc.stderr
    assert (probe(out / "a.mp4").width, probe(out / "a.mp4").height) == (64, 48)  # the frame's size
    assert (probe(out / "sub" / "b.mp4").width, probe(out / "sub" / "b.mp4").height) == (64, 48)  # 2 x 32, padded
    assert decoded_pts(out / "a.mp4") == decoded_pts(inputs / "a.mp4")
