"""The one place where depth becomes pixels: normalisation, colormaps and layouts.

Normalisation turns float depth into uint8 grey levels. ``frame`` uses each frame's
robust percentiles; ``fixed`` uses bounds the user gives; ``stable`` (for video) carries the
previous frame's bounds over to the current frame through a motion-compensated
least-squares fit of the current depth to the previous one, then eases them towards the
current percentiles. That cancels MiDaS's per-frame scale/shift jumps, keeps colours still
while an object comes and goes, and widens the bounds at once when something would clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from livedepth.errors import LivedepthError

if TYPE_CHECKING:
    from livedepth.settings import RenderSettings

LAYOUTS = ("depth", "side", "overlay", "blur")
NORMALIZE_MODES = ("frame", "stable", "fixed")
DEFAULT_COLORMAP = "inferno"


def colormap_names() -> list[str]:
    """Every OpenCV colormap by lower-case name, plus ``gray``."""
    names = [k[len("COLORMAP_") :].lower() for k in dir(cv2) if k.startswith("COLORMAP_")]
    return sorted({*names, "gray"})


def check_colormap(name: str) -> str:
    """Return ``name`` lower-cased, or raise a one-line error listing the valid names."""
    lower = name.lower()
    if lower != "gray" and not hasattr(cv2, f"COLORMAP_{lower.upper()}"):
        raise LivedepthError(f"unknown colormap {name!r}; choose from {', '.join(colormap_names())}")
    return lower


def check_layout(name: str) -> str:
    """Return ``name`` if it is a known layout, else raise a one-line error."""
    if name not in LAYOUTS:
        raise LivedepthError(f"unknown layout {name!r}; choose from {', '.join(LAYOUTS)}")
    return name


def percentile_bounds(depth: np.ndarray, lo: float = 2.0, hi: float = 98.0) -> tuple[float, float]:
    """The ``lo`` and ``hi`` percentiles of the finite values of ``depth`` ((0, 0) if none)."""
    finite = depth[np.isfinite(depth)]
    if finite.size == 0:
        return 0.0, 0.0
    d_lo, d_hi = np.percentile(finite, [lo, hi])
    return float(d_lo), float(d_hi)


def scale_to_uint8(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map of ``lo``..``hi`` to 0..255, clipped; a flat range maps to 0."""
    span = hi - lo
    if not np.isfinite(span) or span <= 1e-12:
        return np.zeros(depth.shape, np.uint8)
    scaled = (depth.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / span)
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0, 255).astype(np.uint8)


def colormap_lut(colormap: str) -> np.ndarray:
    """The 256 BGR colours of ``colormap`` (index = grey level), uint8 256x3."""
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return apply_colormap(ramp, colormap).reshape(256, 3)


def apply_colormap(gray: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """uint8 HxW -> BGR uint8 HxWx3 with an OpenCV colormap (or plain gray)."""
    name = check_colormap(colormap)
    if name == "gray":
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    return cv2.applyColorMap(gray, getattr(cv2, f"COLORMAP_{name.upper()}"))


def background_mask(depth: np.ndarray, percentile: float = 50.0, softness: float = 10.0) -> np.ndarray:
    """Float32 HxW in [0, 1]: 1 for the far background, 0 for the near subject.

    Depth is inverse (larger is nearer). Pixels below the ``percentile - softness``
    percentile are fully background, pixels above ``percentile + softness`` fully
    subject, with a linear ramp in depth between the two, so the edge is soft.
    """
    finite = depth[np.isfinite(depth)]
    if finite.size == 0:
        return np.zeros(depth.shape, np.float32)
    p_far, p_near = np.percentile(
        finite[:: max(1, finite.size // 20_000)], [max(0.0, percentile - softness), min(100.0, percentile + softness)]
    )
    span = max(float(p_near - p_far), 1e-12)
    mask = (np.float32(p_near) - depth.astype(np.float32)) * np.float32(1.0 / span)
    return np.clip(np.nan_to_num(mask, nan=1.0), 0.0, 1.0)


def blur_background(
    frame_bgr: np.ndarray, depth: np.ndarray, percentile: float = 50.0, softness: float = 10.0, strength: float = 0.02
) -> np.ndarray:
    """The frame with its far part blurred; pixels of the near subject stay identical.

    ``strength`` is the Gaussian sigma as a fraction of the frame's long side. The blur
    runs at quarter resolution for speed.
    """
    h, w = frame_bgr.shape[:2]
    if depth.shape != (h, w):
        depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_LINEAR)
    mask = background_mask(depth, percentile, softness)
    small = cv2.resize(frame_bgr, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    sigma = max(0.5, strength * max(h, w) / 4)
    blurred = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma), (w, h), interpolation=cv2.INTER_LINEAR)
    m = mask[..., None]
    out = frame_bgr.astype(np.float32) * (1.0 - m) + blurred.astype(np.float32) * m
    return np.where(m > 0, np.clip(out + 0.5, 0, 255), frame_bgr).astype(np.uint8)


def compose(
    frame_bgr: np.ndarray | None,
    depth_bgr: np.ndarray,
    layout: str,
    alpha: float = 0.5,
    depth: np.ndarray | None = None,
    blur_percentile: float = 50.0,
) -> np.ndarray:
    """Arrange the colorized depth with the input frame: ``depth``, ``side``, ``overlay`` or ``blur``.

    ``blur`` needs the float ``depth`` and returns the input frame with its background blurred.
    """
    check_layout(layout)
    if layout == "depth" or frame_bgr is None:
        return depth_bgr
    if frame_bgr.shape[:2] != depth_bgr.shape[:2]:
        frame_bgr = cv2.resize(frame_bgr, depth_bgr.shape[1::-1], interpolation=cv2.INTER_AREA)
    if layout == "side":
        return np.hstack([frame_bgr, depth_bgr])
    if layout == "blur":
        if depth is None:
            raise ValueError("the blur layout needs the depth map")
        return blur_background(frame_bgr, depth, blur_percentile)
    return cv2.addWeighted(depth_bgr, alpha, frame_bgr, 1.0 - alpha, 0.0)


# --- normalisers -----------------------------------------------------------------------------


class Normalizer(Protocol):
    """Chooses the depth values that map to grey 0 and 255 for each frame."""

    def bounds(self, depth: np.ndarray) -> tuple[float, float]: ...

    def reset(self) -> None: ...


class FixedNormalizer:
    """User-given bounds for every frame."""

    def __init__(self, value_range: tuple[float, float]) -> None:
        self.value_range = (float(value_range[0]), float(value_range[1]))

    def bounds(self, depth: np.ndarray) -> tuple[float, float]:
        return self.value_range

    def reset(self) -> None:
        """Nothing to forget."""


class FrameNormalizer:
    """Robust percentiles of each frame on its own (flickers on video)."""

    def __init__(self, percentiles: tuple[float, float] = (2.0, 98.0)) -> None:
        self.percentiles = percentiles

    def bounds(self, depth: np.ndarray) -> tuple[float, float]:
        return percentile_bounds(depth, *self.percentiles)

    def reset(self) -> None:
        """Nothing to forget."""


def _sample(depth: np.ndarray, step: int) -> np.ndarray:
    values = depth[::step, ::step].ravel()
    return values[np.isfinite(values)]


@dataclass(eq=False)
class SceneCutDetector:
    """Frame-to-frame gain and offset of a depth video, and its scene cuts.

    ``update(depth)`` fits ``coarse_t = a * coarse_{t-1} + c`` on an area-averaged grid of
    the depth (``grid``). With ``motion``, a trimmed Lucas-Kanade step first finds the
    global shift between the two grids (a camera pan) and both grids move half-way to meet
    (without it a pan biases the gain by ~0.05% a frame). Then least squares, drop the
    ``1 - trim`` worst residuals (an object moving, pixels uncovered by the pan), refit,
    drop again, and take the symmetric slope ``std(cur)/std(prev)`` of the inliers (least
    squares would shrink by the correlation). A cut is a grid correlation below
    ``cut_correlation``, a gain outside ``1/max_gain .. max_gain``, or a shift of more than
    a quarter of the view. Shared by :class:`StableNormalizer` and
    :class:`livedepth.temporal.TemporalFilter`.
    """

    grid: tuple[int, int] = (40, 30)
    motion: bool = True
    trim: float = 0.8
    cut_correlation: float = 0.5
    max_gain: float = 3.0
    #: Scene cuts seen so far.
    cuts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame."""
        self._coarse: np.ndarray | None = None

    def update(self, depth: np.ndarray) -> tuple[float, float] | None:
        """Gain and offset ``(a, c)`` with ``depth ~ a * previous + c``; None for the first
        frame after a reset, or at a scene cut (counted in ``cuts``)."""
        coarse = self._coarse_grid(depth)
        prev, self._coarse = self._coarse, coarse
        if prev is None:
            return None
        a, c, r = self._fit(prev, coarse)
        if r < self.cut_correlation or not 1.0 / self.max_gain <= a <= self.max_gain:
            self.cuts += 1
            return None
        return a, c

    def _coarse_grid(self, depth: np.ndarray) -> np.ndarray:
        grid = cv2.resize(depth.astype(np.float32, copy=False), self.grid, interpolation=cv2.INTER_AREA)
        if not np.isfinite(grid).all():  # rare: clean the full map only when needed
            clean = np.nan_to_num(depth.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            grid = cv2.resize(clean, self.grid, interpolation=cv2.INTER_AREA)
        return grid.astype(np.float64)

    def _fit(self, prev: np.ndarray, cur: np.ndarray) -> tuple[float, float, float]:
        """Gain, offset and correlation of ``cur ~ a * prev + c`` on the coarse grids.

        With ``motion``, one Lucas-Kanade step first estimates the global shift between the
        grids (a camera pan), and both grids are moved half-way towards each other, so the
        fit compares the same scene points; otherwise a pan biases the gain a little every
        frame, and :class:`StableNormalizer`'s bounds drift.
        """
        if self.motion:
            u, v = _global_shift(prev, cur, self.trim) or (0.0, 0.0)
            if max(abs(u), abs(v)) > 0.25 * min(prev.shape):
                return 1.0, 0.0, 0.0  # more than a quarter of the view in one frame: a cut
            prev, cur = _translate(prev, u / 2, v / 2)[1:-1, 1:-1], _translate(cur, -u / 2, -v / 2)[1:-1, 1:-1]
        x, y = prev.ravel(), cur.ravel()
        keep = np.ones(x.size, bool)
        a, c = 1.0, 0.0
        for _ in range(2):
            xk, yk = x[keep], y[keep]
            xm, ym = xk.mean(), yk.mean()
            var = float(((xk - xm) ** 2).sum())
            if var <= 1e-20:
                return 1.0, float(ym - xm), 0.0
            a = float(((xk - xm) * (yk - ym)).sum() / var)
            c = float(ym - a * xm)
            keep = _inliers(np.abs(y - (a * x + c)), self.trim)
        xk, yk = x[keep], y[keep]
        if xk.size <= 2 or xk.std() <= 0 or yk.std() <= 0:
            return a, c, 0.0
        r = float(np.corrcoef(xk, yk)[0, 1])
        # the least-squares slope shrinks by the correlation (noise in both maps), which would
        # narrow the bounds every frame; the symmetric slope std(y)/std(x) of the inliers does not
        a = float(np.sign(r) * yk.std() / xk.std())
        return a, float(yk.mean() - a * xk.mean()), r


@dataclass(eq=False)
class StableNormalizer:
    """Causal, temporally smoothed bounds for video.

    Per frame:

    1. fit ``coarse_t = a * coarse_{t-1} + c`` on an area-averaged grid of the depth
       (``grid``), motion-compensated with ``motion`` and trimmed with ``trim``: see
       :class:`SceneCutDetector` (without the motion step a pan biases the gain by ~0.05% a
       frame, which adds up to a visible drift);
    2. carry the previous bounds over to this frame's units: ``a * bound + c``;
    3. ease them towards this frame's ``percentiles`` (plus ``margin`` of their span on each
       side): at rate ``expand`` where the target lies outside (something would clip; 1.0,
       at once, measured best: spreading the step does not lower TC but clips meanwhile), at
       rate ``contract`` where the range could shrink by more than ``deadband`` of its span
       (0.02: about 2 s at 30 fps, so someone stepping in and out of view does not recolour
       the room each time), and not at all otherwise.

    A scene cut (grid correlation below ``cut_correlation``, or a fitted gain outside
    ``1/max_gain .. max_gain``; :class:`SceneCutDetector`) resets to this frame's own bounds.
    """

    percentiles: tuple[float, float] = (1.0, 99.0)
    margin: float = 0.05
    expand: float = 1.0
    contract: float = 0.02
    deadband: float = 0.1
    grid: tuple[int, int] = (40, 30)
    sample_step: int = 4
    align: bool = True
    motion: bool = True
    trim: float = 0.8
    cut_correlation: float = 0.5
    max_gain: float = 3.0

    def __post_init__(self) -> None:
        self._cut_detector = SceneCutDetector(self.grid, self.motion, self.trim, self.cut_correlation, self.max_gain)
        self.reset()

    @property
    def cuts(self) -> int:
        """Scene cuts seen so far."""
        return self._cut_detector.cuts

    def reset(self) -> None:
        """Forget the previous frame (new video or scene cut)."""
        self._bounds: tuple[float, float] | None = None
        self._cut_detector.reset()

    def _target(self, depth: np.ndarray) -> tuple[float, float] | None:
        values = _sample(depth, self.sample_step)
        if values.size == 0:
            return None
        p_lo, p_hi = np.percentile(values, self.percentiles)
        pad = self.margin * float(p_hi - p_lo)
        return float(p_lo) - pad, float(p_hi) + pad

    def bounds(self, depth: np.ndarray) -> tuple[float, float]:
        target = self._target(depth)
        if target is None:
            return self._bounds or (0.0, 0.0)
        prev_bounds = self._bounds
        if self.align:
            change = self._cut_detector.update(depth)
            if change is None or prev_bounds is None:
                prev_bounds = None  # the first frame, or a scene cut
            else:
                a, c = change
                prev_bounds = (a * prev_bounds[0] + c, a * prev_bounds[1] + c)
        if prev_bounds is None:
            self._bounds = target
            return target
        lo, hi = prev_bounds
        t_lo, t_hi = target
        slack = self.deadband * max(hi - lo, 1e-12)
        if t_lo < lo:
            lo += self.expand * (t_lo - lo)
        elif t_lo > lo + slack:
            lo += self.contract * (t_lo - lo)
        if t_hi > hi:
            hi += self.expand * (t_hi - hi)
        elif t_hi < hi - slack:
            hi += self.contract * (t_hi - hi)
        self._bounds = (lo, hi)
        return self._bounds


def _translate(grid: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``grid`` moved by ``(dx, dy)`` cells (bilinear, edges repeated)."""
    m = np.float64([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(grid, m, grid.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _inliers(resid: np.ndarray, keep: float) -> np.ndarray:
    """Mask of the ``keep`` fraction of smallest residuals."""
    k = min(resid.size - 1, int(keep * resid.size))
    return resid <= np.partition(resid, k)[k]


def _global_shift(prev: np.ndarray, cur: np.ndarray, trim: float) -> tuple[float, float] | None:
    """The shift ``(u, v)`` in cells with ``cur(p) ~ a * prev(p - (u, v)) + c`` (one trimmed Lucas-Kanade step)."""
    gy, gx = np.gradient(prev)
    inner = (slice(1, -1), slice(1, -1))
    design = np.stack([prev[inner].ravel(), np.ones(gx[inner].size), gx[inner].ravel(), gy[inner].ravel()], 1)
    target = cur[inner].ravel()
    keep = np.ones(target.size, bool)
    coef = np.zeros(4)
    for _ in range(3):
        xk = design[keep]
        normal = xk.T @ xk
        # a little ridge on the shift terms: where the grid has no gradient (flat, or a plain
        # ramp whose gradient is constant), the shift is unknown and comes out as zero
        normal[2:, 2:] += np.eye(2) * (1e-6 * float(np.trace(normal[2:, 2:])) + 1e-12)
        try:
            coef = np.linalg.solve(normal, xk.T @ target[keep])
        except np.linalg.LinAlgError:
            return None
        keep = _inliers(np.abs(target - design @ coef), trim)
    if not np.isfinite(coef).all() or abs(coef[0]) <= 1e-12:
        return None
    return float(-coef[2] / coef[0]), float(-coef[3] / coef[0])


def make_normalizer(
    mode: str,
    value_range: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = (2.0, 98.0),
    smoothing: float = 0.02,
) -> Normalizer:
    """The normaliser for ``mode`` (``frame``, ``stable`` or ``fixed``)."""
    if mode not in NORMALIZE_MODES:
        raise LivedepthError(f"unknown normalisation {mode!r}; choose from {', '.join(NORMALIZE_MODES)}")
    if mode == "fixed":
        if value_range is None:
            raise LivedepthError("--normalize fixed needs --range LO,HI")
        return FixedNormalizer(value_range)
    if mode == "stable":
        return StableNormalizer(contract=smoothing)
    return FrameNormalizer(percentiles)


class Colorizer:
    """Turns depth maps into displayable BGR frames with a chosen colormap and layout.

    ``normalize`` is ``frame`` (robust percentiles of each frame), ``stable`` (bounds
    carried over from frame to frame, for video; see :class:`StableNormalizer`) or ``fixed``
    (``value_range``). ``invert`` flips the colormap so that far is bright. The ``blur``
    layout blurs the part of the input frame farther than ``blur_percentile``.
    """

    def __init__(
        self,
        colormap: str = DEFAULT_COLORMAP,
        layout: str = "depth",
        alpha: float = 0.5,
        normalize: str = "frame",
        value_range: tuple[float, float] | None = None,
        invert: bool = False,
        percentiles: tuple[float, float] = (2.0, 98.0),
        smoothing: float = 0.02,
        blur_percentile: float = 50.0,
    ) -> None:
        self.normalizer = make_normalizer(normalize, value_range, percentiles, smoothing)
        self.colormap = check_colormap(colormap)
        self.layout = check_layout(layout)
        self.alpha = alpha
        self.normalize_mode = normalize
        self.value_range = value_range
        self.invert = invert
        self.blur_percentile = blur_percentile

    @classmethod
    def from_settings(cls, render: RenderSettings) -> Colorizer:
        """The colorizer for a ``[render]`` section."""
        return cls(colormap=render.colormap, layout=render.layout, alpha=render.alpha, normalize=render.normalize,
                   value_range=render.range, invert=render.invert)

    def reset(self) -> None:
        """Forget temporal state (call at a scene cut or a new video)."""
        self.normalizer.reset()

    def near_gray(self, depth: np.ndarray) -> np.ndarray:
        """Depth -> uint8 HxW normalised depth, 255 nearest whatever ``invert`` says (one normaliser step)."""
        return scale_to_uint8(depth, *self.normalizer.bounds(depth))

    def normalize(self, depth: np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
        """Depth -> uint8 HxW (grey 255 is near, or far with ``invert``); ``near``: its :meth:`near_gray`, if known."""
        gray = self.near_gray(depth) if near is None else near
        return 255 - gray if self.invert else gray

    def render(self, depth: np.ndarray, frame_bgr: np.ndarray | None = None,
               near: np.ndarray | None = None) -> np.ndarray:
        """The BGR image for ``depth`` (and its input frame, for side, overlay and blur).

        ``near`` is this frame's :meth:`near_gray` when the caller has computed it already.
        """
        depth_bgr = apply_colormap(self.normalize(depth, near), self.colormap)
        return compose(frame_bgr, depth_bgr, self.layout, self.alpha, depth, self.blur_percentile)

    def cycle_colormap(self, choices: tuple[str, ...] = ("inferno", "magma", "turbo", "viridis", "gray")) -> str:
        """Switch to the next colormap in ``choices``."""
        self.colormap = _next(choices, self.colormap)
        return self.colormap

    def cycle_layout(self) -> str:
        """Switch to the next layout."""
        self.layout = _next(LAYOUTS, self.layout)
        return self.layout


def _next(choices: tuple[str, ...], current: str) -> str:
    return choices[(choices.index(current) + 1) % len(choices)] if current in choices else choices[0]
