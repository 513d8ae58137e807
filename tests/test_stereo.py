"""Stereo from depth: geometry measured by correlation on a synthetic two-plane scene, occlusion and
disocclusion, the 3D layouts and their sizes, anaglyph channels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import livedepth
from livedepth.render.colorize import LAYOUTS, Colorizer
from livedepth.core.vocab import STEREO_LAYOUTS
from livedepth.render.stereo import Stereo, StereoWarp, anaglyph, stereo_views

H, W = 240, 320
NEAR_N, FAR_N = 0.9, 0.2
#: The near plane: a rectangle in front of the far plane, which fills the rest of the frame.
NEAR_ROWS, NEAR_COLS = slice(60, 180), slice(100, 220)
NEAR_COLOUR, FAR_COLOUR = np.float32([40, 60, 200]), np.float32([200, 120, 40])  # BGR: reddish, bluish


def _texture(rng: np.random.Generator, tint: np.ndarray) -> np.ndarray:
    """A textured plane: blurred noise (so a correlation peak is smooth) around a tint."""
    noise = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), 1.2)
    noise /= noise.std()
    return np.clip(tint + 30 * noise[..., None], 0, 255).astype(np.uint8)


def two_planes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A near textured plane in front of a far textured plane: the frame and its normalised depth."""
    rng = np.random.default_rng(seed)
    frame = _texture(rng, FAR_COLOUR)
    frame[NEAR_ROWS, NEAR_COLS] = _texture(rng, NEAR_COLOUR)[NEAR_ROWS, NEAR_COLS]
    near = np.full((H, W), FAR_N, np.float32)
    near[NEAR_ROWS, NEAR_COLS] = NEAR_N
    return frame, near


def expected_shift(n: float, divergence: float, convergence: float) -> float:
    return divergence / 100 * W * (n - convergence)


def measured_shift(left: np.ndarray, right: np.ndarray, rows: slice, cols: slice, reach: int = 20) -> float:
    """The shift ``d`` with ``left(x) ~ right(x - d)`` on the patch ``rows, cols``: zero-mean normalised
    cross-correlation at whole-pixel lags, refined by a parabola through the peak and its neighbours."""
    a = cv2.cvtColor(left, cv2.COLOR_BGR2GRAY).astype(np.float64)[rows]
    b = cv2.cvtColor(right, cv2.COLOR_BGR2GRAY).astype(np.float64)[rows]
    x = np.arange(cols.start, cols.stop)
    patch = a[:, x] - a[:, x].mean()
    scores = []
    for lag in range(-reach, reach + 1):
        other = b[:, x - lag] - b[:, x - lag].mean()
        scores.append((patch * other).sum() / np.sqrt((patch**2).sum() * (other**2).sum()))
    k = int(np.argmax(scores))
    assert 0 < k < 2 * reach, "the correlation peak is at the edge of the search"
    s0, s1, s2 = scores[k - 1 : k + 2]
    return k - reach + 0.5 * (s0 - s2) / (s0 - 2 * s1 + s2)


#: Patches well inside each plane (the shifts stay below 12 px here).
NEAR_PATCH = (slice(80, 160), slice(125, 195))
FAR_PATCH = (slice(190, 235), slice(40, 280))


def test_the_measurement_recovers_a_known_sub_pixel_shift() -> None:
    frame, _ = two_planes()
    moved = cv2.warpAffine(frame, np.float64([[1, 0, 2.3], [0, 1, 0]]), (W, H), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    assert measured_shift(moved, frame, *FAR_PATCH) == pytest.approx(2.3, abs=0.1)


@pytest.mark.parametrize("divergence, convergence", [(2.0, 0.5), (4.0, 0.3), (6.0, 1.0), (3.0, 0.0)])
def test_each_plane_moves_by_s_between_the_views(divergence: float, convergence: float) -> None:
    frame, near = two_planes()
    left, right = stereo_views(frame, near, divergence, convergence)
    assert left.shape == right.shape == frame.shape and left.dtype == np.uint8
    for n, patch in ((NEAR_N, NEAR_PATCH), (FAR_N, FAR_PATCH)):
        s = expected_shift(n, divergence, convergence)
        assert measured_shift(left, right, *patch) == pytest.approx(s, abs=0.5)
        # each view carries half of it: left at x + s/2, right at x - s/2
        assert measured_shift(left, frame, *patch) == pytest.approx(s / 2, abs=0.5)
        assert measured_shift(frame, right, *patch) == pytest.approx(s / 2, abs=0.5)


def test_the_plane_at_the_convergence_depth_does_not_move() -> None:
    frame, near = two_planes()
    left, right = stereo_views(frame, near, divergence=3.0, convergence=FAR_N)
    assert measured_shift(left, right, *FAR_PATCH) == pytest.approx(0.0, abs=0.1)
    # away from the near plane's edges, its pixels are the frame's, unchanged
    for view in (left, right):
        assert (view[FAR_PATCH] == frame[FAR_PATCH]).all()
    assert measured_shift(left, right, *NEAR_PATCH) == pytest.approx(expected_shift(NEAR_N, 3.0, FAR_N), abs=0.5)


def test_a_float_depth_and_its_grey_levels_give_the_same_views() -> None:
    frame, near = two_planes()
    grey = np.round(near * 255).astype(np.uint8)  # 0.9 and 0.2 are whole grey levels apart from rounding
    float_views = stereo_views(frame, grey.astype(np.float32) / 255)
    grey_views = stereo_views(frame, grey)
    for a, b in zip(float_views, grey_views, strict=True):
        assert np.abs(a.astype(int) - b).max() <= 1


def test_swapping_the_eyes_flips_the_sign() -> None:
    frame, near = two_planes()
    plain = Stereo(divergence=2.0).compose("sbs", frame, near)
    swapped = Stereo(divergence=2.0, swap_eyes=True).compose("sbs", frame, near)
    for sbs, sign in ((plain, 1), (swapped, -1)):
        first, second = sbs[:, :W], sbs[:, W:]
        for n, patch in ((NEAR_N, NEAR_PATCH), (FAR_N, FAR_PATCH)):
            assert measured_shift(first, second, *patch) == pytest.approx(sign * expected_shift(n, 2.0, 0.5), abs=0.5)
    assert (swapped[:, :W] == plain[:, W:]).all() and (swapped[:, W:] == plain[:, :W]).all()


def _nearer_tint(pixels: np.ndarray) -> np.ndarray:
    """For each pixel: True where its colour is closer to the near plane's tint than to the far one's."""
    p = pixels.reshape(-1, 3).astype(np.float32)
    return np.linalg.norm(p - NEAR_COLOUR, axis=1) < np.linalg.norm(p - FAR_COLOUR, axis=1)


def test_disocclusions_are_filled_from_the_background_and_the_near_plane_occludes() -> None:
    divergence = 10.0
    frame, near = two_planes()
    left, right = stereo_views(frame, near, divergence)
    half_near, half_far = expected_shift(NEAR_N, divergence, 0.5) / 2, expected_shift(FAR_N, divergence, 0.5) / 2
    x0, x1 = NEAR_COLS.start, NEAR_COLS.stop - 1  # the near plane's first and last columns
    # left view: the near plane moves right by half_near, the far plane left by |half_far|: a hole
    # opens at the near plane's left edge, and the near plane covers the far one at its right edge
    hole = slice(int(np.ceil(x0 - 1 + half_far)) + 1, int(np.floor(x0 + half_near)))
    assert hole.stop - hole.start >= 8
    strip = left[NEAR_ROWS, hole]
    assert not _nearer_tint(strip).any()
    far_plane = frame[FAR_PATCH].reshape(-1, 3).astype(np.float32)
    assert np.abs(strip.reshape(-1, 3).mean(0) - far_plane.mean(0)).max() < 15  # the far plane's colours
    covered = slice(x1 + 1, int(np.floor(x1 + half_near)))
    assert _nearer_tint(left[NEAR_ROWS, covered]).all()
    # right view: mirrored
    hole = slice(int(np.ceil(x1 - half_near)) + 1, int(np.floor(x1 + 1 - half_far)))
    assert hole.stop - hole.start >= 8
    assert not _nearer_tint(right[NEAR_ROWS, hole]).any()
    assert _nearer_tint(right[NEAR_ROWS, int(np.ceil(x0 - half_near)) : x0]).all()


@pytest.mark.parametrize("size", [0, W // 2])
@pytest.mark.parametrize("soften", ["blur", "low-resolution"])
def test_soft_depth_edges_do_not_smear_the_foreground_into_the_hole(soften: str, size: int) -> None:
    frame, near = two_planes()
    if soften == "blur":
        near = cv2.GaussianBlur(near, (0, 0), 1.5)
    else:  # as a model that predicts at a lower resolution, upsampled
        near = cv2.resize(cv2.resize(near, (W * 2 // 5, H * 2 // 5), interpolation=cv2.INTER_AREA), (W, H),
                          interpolation=cv2.INTER_CUBIC)
    left, right = StereoWarp(10.0, 0.5, size).views(frame, near)  # size: also when solved at half width
    half_near, half_far = expected_shift(NEAR_N, 10.0, 0.5) / 2, expected_shift(FAR_N, 10.0, 0.5) / 2
    x0, x1 = NEAR_COLS.start, NEAR_COLS.stop - 1
    left_hole = left[NEAR_ROWS, int(np.ceil(x0 - 1 + half_far)) + 1 : int(np.floor(x0 + half_near)) - 2]
    right_hole = right[NEAR_ROWS, int(np.ceil(x1 - half_near)) + 3 : int(np.floor(x1 + 1 - half_far))]
    assert _nearer_tint(left_hole).mean() <= 0.01 and _nearer_tint(right_hole).mean() <= 0.01


def test_a_lower_resolution_warp_keeps_the_geometry() -> None:
    frame, near = two_planes()
    full = StereoWarp(2.0, 0.5).views(frame, near)
    small = StereoWarp(2.0, 0.5, size=W // 2).views(frame, near)
    for n, patch in ((NEAR_N, NEAR_PATCH), (FAR_N, FAR_PATCH)):
        assert measured_shift(*small, *patch) == pytest.approx(expected_shift(n, 2.0, 0.5), abs=0.5)
    # inside the planes the two agree (the source columns are linear there)
    assert np.abs(full[0][FAR_PATCH].astype(int) - small[0][FAR_PATCH]).mean() < 2


@pytest.mark.parametrize("width", [1920, 3840])
def test_a_wide_frame_moves_by_s_too(width: int) -> None:
    """Wide frames are solved with coarser fixed-point columns (1/16, 1/8 px): a plane still lands
    where ``s`` puts it, compared with the frame shifted by linear interpolation."""
    rng = np.random.default_rng(1)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (24, width, 3)).astype(np.float32), (0, 0), 3)
    frame = cv2.normalize(frame, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    n, divergence, convergence = 0.9, 10.0, 0.5
    half = divergence / 100 * width * (n - convergence) / 2
    left, right = stereo_views(frame, np.full(frame.shape[:2], n, np.float32), divergence, convergence)
    inside = slice(int(half) + 2, width - int(half) - 2)
    for view, shift in ((left, half), (right, -half)):
        moved = cv2.warpAffine(frame, np.float64([[1, 0, shift], [0, 1, 0]]), (width, 24), flags=cv2.INTER_LINEAR)
        assert np.abs(view[:, inside].astype(int) - moved[:, inside]).max() <= 2


def test_no_divergence_gives_the_frame_itself() -> None:
    frame, near = two_planes()
    left, right = stereo_views(frame, near, divergence=0.0)
    assert (left == frame).all() and (right == frame).all()


def test_the_depth_is_resized_to_the_frame_and_bad_values_are_refused() -> None:
    frame, near = two_planes()
    left, _ = stereo_views(frame, cv2.resize(near, (W // 4, H // 4), interpolation=cv2.INTER_NEAREST))
    assert left.shape == frame.shape
    with pytest.raises(ValueError):
        stereo_views(frame, near, convergence=1.5)
    with pytest.raises(ValueError):
        stereo_views(frame, near, divergence=-1)
    with pytest.raises(ValueError):
        Stereo(anaglyph="blue")


def test_stereo_views_is_importable_from_the_package() -> None:
    assert livedepth.stereo_views is stereo_views


# --- layouts -------------------------------------------------------------------------------------


def _expected_size(layout: str, h: int, w: int) -> tuple[int, int]:
    half_w, half_h = -(-w // 2), -(-h // 2)
    return {"depth": (h, w), "side": (h, 2 * w), "overlay": (h, w), "blur": (h, w), "sbs": (h, 2 * w),
            "half-sbs": (h, 2 * half_w), "tab": (2 * h, w), "half-tab": (2 * half_h, w), "anaglyph": (h, w),
            "rgbd": (h, 2 * w)}[layout]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("h, w", [(48, 64), (47, 65)])
def test_every_layout_has_its_size(layout: str, h: int, w: int) -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3)
    out = Colorizer(layout=layout).render(depth, frame)
    assert out.shape == (*_expected_size(layout, h, w), 3) and out.dtype == np.uint8
    if layout in ("half-sbs", "half-tab") and (h, w) == (48, 64):
        assert out.shape[:2] == frame.shape[:2]  # the half layouts keep an even frame's size
    if layout in STEREO_LAYOUTS:  # without a frame, the colorized depth stands in for it
        assert Colorizer(layout=layout).render(depth).shape == out.shape


def test_the_3d_layouts_are_cut_from_the_views() -> None:
    frame, near = two_planes()
    grey = np.round(near * 255).astype(np.uint8)
    left, right = stereo_views(frame, grey, 2.0, 0.5)
    stereo = Stereo(divergence=2.0, convergence=0.5, anaglyph="color")
    assert (stereo.compose("sbs", frame, grey) == np.hstack([left, right])).all()
    assert (stereo.compose("tab", frame, grey) == np.vstack([left, right])).all()
    half = stereo.compose("half-sbs", frame, grey)
    assert half.shape == frame.shape
    assert measured_shift(half[:, : W // 2], half[:, W // 2 :], NEAR_PATCH[0], slice(65, 95), reach=10) == \
        pytest.approx(expected_shift(NEAR_N, 2.0, 0.5) / 2, abs=0.5)  # each eye squeezed to half the width
    half_tab = stereo.compose("half-tab", frame, grey)
    assert half_tab.shape == frame.shape
    assert measured_shift(half_tab[: H // 2], half_tab[H // 2 :], slice(40, 80), NEAR_PATCH[1]) == \
        pytest.approx(expected_shift(NEAR_N, 2.0, 0.5), abs=0.5)
    rgbd = stereo.compose("rgbd", frame, grey)
    assert (rgbd[:, :W] == frame).all() and (rgbd[:, W:] == grey[..., None]).all()


def test_rgbd_is_white_near_even_with_an_inverted_colormap() -> None:
    depth = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (32, 1))  # right is near
    frame = np.zeros((32, 64, 3), np.uint8)
    for invert in (False, True):
        out = Colorizer(layout="rgbd", normalize="fixed", value_range=(0, 1), invert=invert).render(depth, frame)
        grey = out[:, 64:, 0].astype(int)
        assert grey[:, -1].min() == 255 and grey[:, 0].max() == 0


def test_anaglyph_channels_come_from_the_right_eyes() -> None:
    rng = np.random.default_rng(3)
    left, right = (rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(2))
    colour = anaglyph(left, right, "color")
    assert (colour[..., 2] == left[..., 2]).all() and (colour[..., :2] == right[..., :2]).all()
    grey = anaglyph(left, right, "gray")
    assert (grey[..., 2] == cv2.cvtColor(left, cv2.COLOR_BGR2GRAY)).all()
    assert (grey[..., 0] == cv2.cvtColor(right, cv2.COLOR_BGR2GRAY)).all() and (grey[..., 1] == grey[..., 0]).all()
    # Dubois: the left eye's light goes to red, the right eye's to green and blue
    white, black = np.full((4, 4, 3), 255, np.uint8), np.zeros((4, 4, 3), np.uint8)
    left_only, right_only = anaglyph(white, black, "dubois"), anaglyph(black, white, "dubois")
    assert left_only[..., 2].min() > 200 and left_only[..., :2].max() == 0
    assert right_only[..., 2].max() == 0 and right_only[..., 1].min() > 200 and right_only[..., 0].min() > 200
    sbs = Stereo(anaglyph="gray").compose("anaglyph", *reversed(two_planes()[::-1]))
    assert sbs.shape == (H, W, 3)


def test_every_3d_layout_is_in_the_layout_cycle() -> None:
    c = Colorizer()
    seen = [c.cycle_layout() for _ in range(len(LAYOUTS))]
    assert set(STEREO_LAYOUTS) <= set(seen) and seen[-1] == "depth"
