"""Colormaps, normalisation modes and layouts, with known inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from support.synthetic_scene import SceneClip, midas_like, tc_by_mode

from livedepth.render.colorize import (
    Colorizer,
    StableNormalizer,
    apply_colormap,
    blur_background,
    colormap_lut,
    colormap_names,
    compose,
    percentile_bounds,
    scale_to_uint8,
)
from livedepth.core.errors import LivedepthError
from livedepth.core.vocab import LAYOUTS
from livedepth.render.alignment import _global_shift


def _ramp(h: int = 60, w: int = 80) -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1))


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


def test_every_colormap_and_invert() -> None:
    names = colormap_names()
    assert {"inferno", "magma", "turbo", "viridis", "gray", "jet"} <= set(names)
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    depth = ramp.astype(np.float32)
    for name in names:
        bgr = apply_colormap(ramp, name)
        assert bgr.shape == (16, 16, 3) and bgr.dtype == np.uint8
        assert (bgr.reshape(256, 3) == colormap_lut(name)).all()
        plain = Colorizer(colormap=name, normalize="fixed", value_range=(0, 255)).render(depth)
        inverted = Colorizer(colormap=name, normalize="fixed", value_range=(0, 255), invert=True).render(depth)
        assert (plain == bgr).all()
        assert (inverted == apply_colormap(255 - ramp, name)).all()
    assert (apply_colormap(ramp, "gray")[..., 0] == ramp).all()
    with pytest.raises(LivedepthError):
        apply_colormap(ramp, "nope")


def test_fixed_mode_maps_range_ends() -> None:
    c = Colorizer(normalize="fixed", value_range=(2.0, 4.0), colormap="gray")
    gray = c.normalize(np.array([[1.0, 2.0, 3.0, 4.0, 9.0]], np.float32))
    assert gray.tolist() == [[0, 0, 127, 255, 255]]
    with pytest.raises(LivedepthError):
        Colorizer(normalize="fixed")
    with pytest.raises(LivedepthError):
        Colorizer(normalize="wobbly")


def test_frame_mode_uses_each_frames_percentiles() -> None:
    c = Colorizer(normalize="frame")
    depth = _ramp()
    first = c.normalize(depth)
    assert np.abs(c.normalize(depth * 7 + 3).astype(int) - first).max() <= 1  # affine change: same picture
    assert first.min() == 0 and first.max() == 255


def test_stable_cancels_gain_offset_jumps() -> None:
    rng = np.random.default_rng(0)
    base = _ramp() + 0.2 * rng.random((60, 80)).astype(np.float32)
    stable, frame = StableNormalizer(), Colorizer(normalize="frame")
    ref = scale_to_uint8(base, *stable.bounds(base))
    for _ in range(10):  # a pure per-frame gain/offset (MiDaS's ambiguity) changes nothing
        d = base * rng.uniform(0.7, 1.3) + rng.uniform(-1, 1)
        assert np.abs(scale_to_uint8(d, *stable.bounds(d)).astype(int) - ref).max() <= 1
    assert frame.normalize(base).min() == 0


def test_stable_converges_and_does_not_clip_for_long() -> None:
    base = _ramp()
    stable = StableNormalizer()
    stable.bounds(base)
    wide = base.copy()
    wide[:, -10:] = 3.0  # something much nearer enters
    clipped = []
    for _ in range(12):
        lo, hi = stable.bounds(wide)
        clipped.append(float((scale_to_uint8(wide, lo, hi) == 255).mean()))
    assert clipped[-1] == 0.0 and clipped.index(0.0) <= 6  # unclipped within 6 frames (0.2 s at 30 fps)
    lo0, hi0 = stable.bounds(wide)
    lo1, hi1 = stable.bounds(wide)
    assert (lo0, hi0) == pytest.approx((lo1, hi1), rel=1e-3)  # settled: a still scene stays still


def test_stable_resets_on_a_cut() -> None:
    rng = np.random.default_rng(1)
    a = _ramp()
    b = rng.random((60, 80)).astype(np.float32) * 100  # unrelated scene, other units
    stable = StableNormalizer()
    for _ in range(3):
        stable.bounds(a)
    assert stable.bounds(b) == pytest.approx(StableNormalizer().bounds(b))
    assert stable.cuts == 1
    c = Colorizer(normalize="stable")
    c.normalize(a)
    c.reset()
    assert (c.normalize(b) == Colorizer(normalize="stable").normalize(b)).all()


def test_global_shift_recovers_a_pan_under_gain_and_offset() -> None:
    rng = np.random.default_rng(4)
    scene = cv2.GaussianBlur(rng.random((90, 120)), (0, 0), 4.0)
    prev = cv2.resize(scene[10:70, 10:90], (40, 30), interpolation=cv2.INTER_AREA)
    moved = np.float64([[1, 0, -4.0], [0, 1, 2.0]])  # the camera pans: content moves 4 px left, 2 px down
    cur = cv2.resize(cv2.warpAffine(scene, moved, (120, 90))[10:70, 10:90], (40, 30), interpolation=cv2.INTER_AREA)
    u, v = _global_shift(prev, 1.3 * cur + 0.4, trim=0.8)
    assert (u, v) == pytest.approx((-2.0, 1.0), abs=0.15)  # in grid cells (2 px each)


def test_stable_is_steadier_than_frame_on_a_midas_like_clip() -> None:
    """MiDaS-like proxy: gain/offset jitter, noise, a pan, and an object walking in and out."""
    clip = SceneClip(
        width=320, height=240, frames_count=24, pan_px_per_frame=2.0, object_speed=8.0, relief=True, object_return=8
    )
    report = tc_by_mode(midas_like(clip.frames(), seed=1))
    assert report["stable"].tc < 0.75 * report["frame"].tc
    assert report["stable"].clipped_fraction < 0.02 < report["frame"].clipped_fraction


def test_layouts() -> None:
    frame = np.full((20, 30, 3), 200, np.uint8)
    depth = np.zeros((20, 30, 3), np.uint8)
    assert compose(frame, depth, "depth") is depth
    side = compose(frame, depth, "side")
    assert side.shape == (20, 60, 3) and (side[:, :30] == 200).all() and (side[:, 30:] == 0).all()
    assert (compose(frame, depth, "overlay", alpha=0.25) == 150).all()
    with pytest.raises(LivedepthError):
        compose(frame, depth, "mosaic")


def test_blur_keeps_the_near_subject_and_blurs_the_far_part() -> None:
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    depth = np.tile(np.linspace(0.0, 1.0, 160, dtype=np.float32), (120, 1))  # right is near
    out = blur_background(frame, depth, percentile=50)
    near, far = slice(110, 160), slice(0, 50)  # above P60 / below P40
    assert (out[:, near] == frame[:, near]).all()
    assert np.abs(out[:, far].astype(int) - frame[:, far]).mean() > 20
    assert out[:, far].std() < frame[:, far].std() / 2
    mid = np.abs(out[:, 64:96].astype(int) - frame[:, 64:96]).mean(axis=(0, 2))
    assert mid[0] > mid[-1]  # soft edge: less change towards the near side
    rendered = Colorizer(layout="blur").render(depth, frame)
    assert rendered.shape == frame.shape and (rendered[:, near] == frame[:, near]).all()


def test_colorizer_cycles_through_every_layout() -> None:
    c = Colorizer()
    assert [c.cycle_layout() for _ in range(len(LAYOUTS))] == [*LAYOUTS[1:], "depth"]
    assert c.cycle_colormap() == "magma"
    out = c.render(np.random.default_rng(0).random((8, 8)).astype(np.float32))
    assert out.shape == (8, 8, 3)
