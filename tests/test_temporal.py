"""The temporal depth filter on synthetic scenes with known depth: noise, motion, cuts, objects."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from support.synthetic_scene import SceneClip

from livedepth.render.temporal import TemporalFilter

W, H = 320, 240


def _still(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return next(SceneClip(width=W, height=H, frames_count=1, relief=True, object_speed=0.0, seed=seed).frames())


def _wobble(rng: np.random.Generator, std: float) -> np.ndarray:
    """A smooth random field (MiDaS-like per-frame wobble) of standard deviation ``std``."""
    field = cv2.resize(rng.normal(size=(H // 16, W // 16)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    return field * np.float32(std / field.std())


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_static_scene_with_noise_converges_to_the_true_depth() -> None:
    frame, truth = _still()
    span, rng = float(np.ptp(truth)), np.random.default_rng(0)
    filt = TemporalFilter()
    errors = [_rms(filt.update(truth + _wobble(rng, 0.03 * span), frame) - truth) / span for _ in range(20)]
    assert errors[0] == pytest.approx(0.03, rel=0.01)  # the first frame passes through
    assert max(errors[-10:]) < 0.6 * 0.03  # measured: about 0.47x


def _pan(filt: TemporalFilter) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(input, output, span) of a noise-free pan through ``filt``."""
    clip = SceneClip(width=W, height=H, frames_count=12, relief=True, object_speed=0.0, pan_px_per_frame=2.5)
    return [(depth, filt.update(depth, frame), float(np.ptp(depth))) for frame, depth in clip.frames()]


def test_noise_free_pan_passes_through_with_only_interpolation_error() -> None:
    always = TemporalFilter(steady=(0.0, 1e-9))  # filter even where the depth is steady
    worst = max(float(np.abs(out - depth).max()) / span for depth, out, span in _pan(always))
    assert 0 < worst < 2e-3  # measured: 2.3e-4 of the depth range


def test_steady_depth_passes_through_unchanged() -> None:
    """With the defaults, a residual at the level of the flow's own error (well under 1% of the
    range here) means there is no wobble to remove: the output is the input, bit for bit."""
    for depth, out in ((depth, out) for depth, out, _ in _pan(TemporalFilter())):
        np.testing.assert_array_equal(out, depth)


def _warmed(seed: int) -> tuple[TemporalFilter, np.ndarray, np.ndarray, float, np.random.Generator]:
    """A filter that has seen five wobbly frames of a still scene, with that scene and its depth."""
    frame, truth = _still()
    span, rng = float(np.ptp(truth)), np.random.default_rng(seed)
    filt = TemporalFilter()
    for _ in range(5):
        filt.update(truth + _wobble(rng, 0.03 * span), frame)
    return filt, frame, truth, span, rng


def test_a_scene_cut_starts_over() -> None:
    filt, frame, truth, span, rng = _warmed(1)
    # another shot: the scene upside down, in other units
    other_frame, other = frame[::-1, ::-1].copy(), truth[::-1, ::-1] * 40 + 3 + _wobble(rng, 1.2 * span)
    assert np.array_equal(filt.update(other, other_frame), other)
    assert filt.cuts == 1
    fresh = TemporalFilter()
    fresh.update(other, other_frame)
    following = other + _wobble(rng, 1.2 * span)
    assert np.array_equal(filt.update(following, other_frame), fresh.update(following, other_frame))


def test_a_cut_the_depth_does_not_show_is_not_blended() -> None:
    """Another place with the same layout (the depth correlates): the flow fails, the frame wins."""
    filt, _, _, span, rng = _warmed(2)
    other_frame, other = _still(seed=7)
    other = other + _wobble(rng, 0.03 * span)
    assert float(np.abs(filt.update(other, other_frame) - other).max()) < 0.01 * span  # measured: 0.004


def test_an_object_walking_in_and_out_leaves_no_ghost() -> None:
    clip = SceneClip(width=W, height=H, frames_count=30, relief=True, pan_px_per_frame=0.0, object_speed=8.0,
                     object_return=10)
    pairs = list(clip.frames())
    rng = np.random.default_rng(3)
    span = float(np.ptp(pairs[0][1]))
    contrast = 2.2 - float(np.median(pairs[0][1]))  # the object is at 2.2-2.5, the room far behind
    filt = TemporalFilter()
    seen = 0
    for t, (frame, depth) in enumerate(pairs):
        noisy = depth + _wobble(rng, 0.02 * span)
        moved = np.abs(filt.update(noisy, frame) - noisy)
        region = (depth > 2.1) | (pairs[t - 1][1] > 2.1) if t else depth > 2.1  # the object now, and its trail
        if t and region.any():
            seen += 1
            # a ghost (the room's history blended in) would move these pixels by about 0.75 * contrast
            assert moved[region].mean() < 0.03 * contrast and moved[region].max() < 0.1 * contrast, t
    assert seen >= 20


def test_output_has_the_input_shape_and_dtype_and_its_units() -> None:
    frame, truth = _still()
    rng = np.random.default_rng(4)
    depth = cv2.resize(truth, (131, 97), interpolation=cv2.INTER_AREA)  # odd size; the frame is larger
    filt = TemporalFilter()
    for i in range(6):
        gain, offset = rng.uniform(0.8, 1.2), rng.uniform(-0.5, 0.5)  # MiDaS's per-frame scale/shift
        noisy = depth * gain + offset + 0.01 * rng.normal(size=depth.shape)
        noisy = noisy.astype(np.float64 if i % 2 else np.float32)
        out = filt.update(noisy, frame if i % 3 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        assert out.shape == depth.shape and out.dtype == np.float32
        a, c = np.polyfit(noisy.ravel(), out.ravel().astype(np.float64), 1)
        assert a == pytest.approx(1.0, abs=0.02) and c == pytest.approx(0.0, abs=0.03)  # still this frame's units


def test_frames_too_small_for_the_flow_pass_through() -> None:
    frame, truth = _still()
    strip, strip_frame = truth[100:120].copy(), frame[100:120].copy()  # 20x320: DIS could crash on it
    filt = TemporalFilter()
    for _ in range(3):
        assert np.array_equal(filt.update(strip, strip_frame), strip)


def test_deterministic() -> None:
    clip = SceneClip(width=W, height=H, frames_count=10, relief=True, object_speed=8.0, object_return=4)
    rng = np.random.default_rng(5)
    inputs = [(f, d + _wobble(rng, 0.05)) for f, d in clip.frames()]
    first, second = TemporalFilter(), TemporalFilter()
    runs = [[first.update(d, f) for f, d in inputs], [second.update(d, f) for f, d in inputs]]
    first.reset()
    runs.append([first.update(d, f) for f, d in inputs])
    assert all(np.array_equal(a, b) for run in runs[1:] for a, b in zip(runs[0], run))
