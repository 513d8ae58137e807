"""``livedepth image`` and ``livedepth weights`` through the real CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from support.cli_helpers import assert_one_line_error, run_cli
from support.golden import TEST_IMAGE
from support.models import CHEAP_SIZE, MODELS, model_flags
from livedepth.inference.estimator import DepthEstimator

pytestmark = pytest.mark.slow  # integration: see the README's fast lane


@pytest.mark.parametrize(("layout", "width"), [("depth", 640), ("side", 1280), ("overlay", 640)])
def test_image_writes_png_for_each_layout(tmp_path: Path, weights_pt: Path, layout: str, width: int) -> None:
    out = tmp_path / f"{layout}.png"
    proc = run_cli("image", str(TEST_IMAGE), str(out), "--layout", layout, "--weights", str(weights_pt))
    assert proc.returncode == 0, proc.stderr
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (480, width, 3)
    assert image.std() > 5  # a real picture, not a flat fill
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("model", MODELS)
def test_raw_equals_predict(tmp_path: Path, model_weights: dict[str, Path], model: str) -> None:
    out, raw, weights = tmp_path / "d.jpg", tmp_path / "d.npy", model_weights[model]
    proc = run_cli(
        "image", str(TEST_IMAGE), str(out), "--keep-aspect", "--raw", str(raw), "--colormap", "turbo",
        *model_flags(model, weights),
    )
    assert proc.returncode == 0, proc.stderr
    estimator = DepthEstimator(model, weights=weights, size=CHEAP_SIZE[model], keep_aspect=True).load()
    expected = estimator.predict(cv2.imread(str(TEST_IMAGE)))
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


@pytest.mark.parametrize("model", MODELS)
def test_offline_without_weights(tmp_path: Path, model: str) -> None:
    proc = run_cli("image", str(TEST_IMAGE), str(tmp_path / "o.png"), "--model", model)
    assert_one_line_error(proc, "--weights PATH")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model", MODELS)
def test_weights_verify_and_path(model_weights: dict[str, Path], model: str) -> None:
    proc = run_cli("weights", "verify", "--model", model, "--weights", str(model_weights[model]))
    assert proc.returncode == 0 and "ok sha256=" in proc.stdout and f"({model}, from --weights)" in proc.stdout, \
        proc.stderr
    proc = run_cli("weights", "path", "--model", model)
    assert proc.returncode == 0 and "not cached" in proc.stdout


@pytest.mark.parametrize(("model", "other"), [("midas-small", "depth-anything-v2-small"),
                                              ("depth-anything-v2-small", "midas-small")])
def test_the_other_models_checkpoint_is_one_line(tmp_path: Path, model_weights: dict[str, Path], model: str,
                                                 other: str) -> None:
    proc = run_cli("image", str(TEST_IMAGE), str(tmp_path / "o.png"), "--model", model,
                   "--weights", str(model_weights[other]))
    assert_one_line_error(proc, f"do not fit {model}: none of its")
    assert list(tmp_path.iterdir()) == []


def test_a_size_that_is_not_a_multiple_of_14_is_one_line(tmp_path: Path, da2_weights_pt: Path) -> None:
    proc = run_cli("image", str(TEST_IMAGE), str(tmp_path / "o.png"), "--model", "depth-anything-v2-small",
                   "--size", "100", "--weights", str(da2_weights_pt))
    assert_one_line_error(proc, "--size 100: must be a multiple of 14 from 14 to 2048 for depth-anything-v2-small")
