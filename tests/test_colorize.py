"""Colormaps, normalisation and layouts."""

from __future__ import annotations

import numpy as np
import pytest

from livedepth.colorize import Colorizer, apply_colormap, colormap_names, compose, percentile_bounds, scale_to_uint8
from livedepth.errors import LivedepthError


def test_percentile_normalize_is_robust_to_outliers() -> None:
    depth = np.linspace(0, 1, 10_000, dtype=np.float32).reshape(100, 100)
    depth[0, 0] = 1e6  # one hot pixel must not squash the rest
    gray = scale_to_uint8(depth, *percentile_bounds(depth, 2, 98))
    assert gray.dtype == np.uint8
    assert gray[50, 50] in range(120, 136)
    assert gray[0, 0] == 255 and gray[0, 1] == 0


def test_flat_depth_is_black_not_nan() -> None:
    flat = np.full((4, 4), 3.0, np.float32)
    assert not scale_to_uint8(flat, *percentile_bounds(flat)).any()


def test_colormaps() -> None:
    names = colormap_names()
    assert {"inferno", "magma", "turbo", "viridis", "gray"} <= set(names)
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for name in names:
        bgr = apply_colormap(ramp, name)
        assert bgr.shape == (16, 16, 3) and bgr.dtype == np.uint8
    assert (apply_colormap(ramp, "gray")[..., 0] == ramp).all()
    with pytest.raises(LivedepthError):
        apply_colormap(ramp, "nope")


def test_layouts() -> None:
    frame = np.full((20, 30, 3), 200, np.uint8)
    depth = np.zeros((20, 30, 3), np.uint8)
    assert compose(frame, depth, "depth") is depth
    side = compose(frame, depth, "side")
    assert side.shape == (20, 60, 3) and (side[:, :30] == 200).all() and (side[:, 30:] == 0).all()
    assert (compose(frame, depth, "overlay", alpha=0.25) == 150).all()


def test_colorizer_cycles() -> None:
    c = Colorizer()
    assert [c.cycle_layout() for _ in range(3)] == ["side", "overlay", "depth"]
    assert c.cycle_colormap() == "magma"
    out = c.render(np.random.default_rng(0).random((8, 8)).astype(np.float32))
    assert out.shape == (8, 8, 3)
