"""``livedepth image`` and ``livedepth weights`` through the real CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from support.cli_helpers import assert_one_line_error, run_cli
from support.golden import TEST_IMAGE
from livedepth.inference.estimator import DepthEstimator


@pytest.mark.parametrize(("layout", "width"), [("depth", 640), ("side", 1280), ("overlay", 640)])
def test_image_writes_png_for_each_layout(tmp_path: Path, weights_pt: Path, layout: str, width: int) -> None:
    out = tmp_path / f"{layout}.png"
    proc = run_cli("image", str(TEST_IMAGE), str(out), "--layout", layout, "--weights", str(weights_pt))
    assert proc.returncode == 0, proc.stderr
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (480, width, 3)
    assert image.std() > 5  # a real picture, not a flat fill
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_raw_equals_predict(tmp_path: Path, weights_pt: Path) -> None:
    out, raw = tmp_path / "d.jpg", tmp_path / "d.npy"
    proc = run_cli(
        "image", str(TEST_IMAGE), str(out), "--keep-aspect", "--raw", str(raw), "--colormap", "turbo",
        "--weights", str(weights_pt),
    )
    assert proc.returncode == 0, proc.stderr
    expected = DepthEstimator(weights=weights_pt, keep_aspect=True).load().predict(cv2.imread(str(TEST_IMAGE)))
    saved = np.load(raw)
    assert saved.dtype == np.float32 and saved.shape == (480, 640)
    np.testing.assert_allclose(saved, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()))


def test_missing_input(tmp_path: Path, weights_pt: Path) -> None:
    proc = run_cli("image", str(tmp_path / "nope.png"), str(tmp_path / "o.png"), "--weights", str(weights_pt))
    assert_one_line_error(proc, "input not found")
    assert list(tmp_path.iterdir()) == []


def test_not_an_image(tmp_path: Path, weights_pt: Path) -> None:
    bogus = tmp_path / "bogus.png"
    bogus.write_bytes(b"not a png at all")
    proc = run_cli("image", str(bogus), str(tmp_path / "o.png"), "--weights", str(weights_pt))
    assert_one_line_error(proc, "cannot read image")
    assert [p.name for p in tmp_path.iterdir()] == ["bogus.png"]


def test_unwritable_output(tmp_path: Path, weights_pt: Path) -> None:
    proc = run_cli("image", str(TEST_IMAGE), str(tmp_path / "no" / "such" / "o.png"), "--weights", str(weights_pt))
    assert_one_line_error(proc, "output folder does not exist")


def test_unknown_layout_and_colormap(tmp_path: Path, weights_pt: Path) -> None:
    out = str(tmp_path / "o.png")
    assert_one_line_error(run_cli("image", str(TEST_IMAGE), out, "--layout", "tiles"),
                          "--layout tiles: must be one of depth")
    assert_one_line_error(run_cli("image", str(TEST_IMAGE), out, "--colormap", "rainbowz"),
                          "--colormap rainbowz: unknown colormap")


def test_offline_without_weights(tmp_path: Path) -> None:
    proc = run_cli("image", str(TEST_IMAGE), str(tmp_path / "o.png"))
    assert_one_line_error(proc, "--weights PATH")
    assert list(tmp_path.iterdir()) == []


def test_weights_verify_and_path(weights_pt: Path) -> None:
    proc = run_cli("weights", "verify", "--weights", str(weights_pt))
    assert proc.returncode == 0 and "ok sha256=" in proc.stdout, proc.stderr
    proc = run_cli("weights", "path")
    assert proc.returncode == 0 and "not cached" in proc.stdout
