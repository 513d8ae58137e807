"""The one place where depth becomes pixels: normalisation, colormaps and layouts (the 3D ones
through :mod:`livedepth.render.stereo`, from the same normalised depth).

Normalisation turns float depth into uint8 grey levels. ``frame`` uses each frame's
robust percentiles; ``fixed`` uses bounds the user gives; ``stable`` (for video) carries the
previous frame's bounds over to the current frame through a motion-compensated
least-squares fit of the current depth to the previous one, then eases them towards the
current percentiles. That cancels MiDaS's per-frame scale/shift jumps, keeps colours still
while an object comes and goes, and widens the bounds at once when something would clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from livedepth.core.errors import LivedepthError
from livedepth.core.vocab import LAYOUTS, NORMALIZE_MODES, STEREO_LAYOUTS
from livedepth.render.alignment import SceneCutDetector
from livedepth.render.stereo import Stereo

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


def scale_to_unit(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Float32 linear map of ``lo``..``hi`` to 0..1, clipped; NaN stays NaN; a flat range maps to 0."""
    span = hi - lo
    if not np.isfinite(span) or span <= 1e-12:
        return np.where(np.isnan(depth), np.float32(np.nan), np.float32(0.0))
    scaled = (depth.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / span)
    return np.clip(scaled, 0.0, 1.0, out=scaled)


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
    The 3D layouts are :class:`Colorizer`'s (they need the normalised depth).
    """
    check_layout(layout)
    if layout in STEREO_LAYOUTS:
        raise ValueError(f"the {layout} layout is composed from the normalised depth: use Colorizer.render")
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
    layout blurs the part of the input frame farther than ``blur_percentile``. ``stereo`` (a
    :class:`~livedepth.render.stereo.Stereo`) renders the 3D layouts from the same normalised depth.
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
        stereo: Stereo | None = None,
    ) -> None:
        self.normalizer = make_normalizer(normalize, value_range, percentiles, smoothing)
        self.colormap = check_colormap(colormap)
        self.layout = check_layout(layout)
        self.alpha = alpha
        self.invert = invert
        self.blur_percentile = blur_percentile
        self.stereo = stereo or Stereo()
        #: The normalisation bounds of the last rendered depth.
        self.bounds: tuple[float, float] = (0.0, 0.0)

    def reset(self) -> None:
        """Forget temporal state (call at a scene cut or a new video)."""
        self.normalizer.reset()

    def near_gray(self, depth: np.ndarray) -> np.ndarray:
        """Depth -> uint8 HxW normalised depth, 255 nearest whatever ``invert`` says (one normaliser
        step; its bounds are kept for :meth:`unit_depth`)."""
        self.bounds = self.normalizer.bounds(depth)
        return scale_to_uint8(depth, *self.bounds)

    def normalize(self, depth: np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
        """Depth -> uint8 HxW (grey 255 is near, or far with ``invert``); ``near``: its :meth:`near_gray`, if known."""
        gray = self.near_gray(depth) if near is None else near
        return 255 - gray if self.invert else gray

    def unit_depth(self, depth: np.ndarray, fresh: bool = False) -> np.ndarray:
        """The normalised depth ``n`` (float32 in [0, 1], 1 nearest, NaN where ``depth`` is), not
        quantised: with the bounds of the depth last rendered (not normalised a second time), or,
        with ``fresh``, normalising ``depth`` itself (updating the normaliser, as ``render`` does)."""
        if fresh:
            self.bounds = self.normalizer.bounds(depth)
        return scale_to_unit(depth, *self.bounds)

    def render(self, depth: np.ndarray, frame_bgr: np.ndarray | None = None,
               near: np.ndarray | None = None) -> np.ndarray:
        """The BGR image for ``depth`` (and its input frame, for side, overlay, blur and the 3D
        layouts; without a frame, the 3D layouts show the colorized depth in 3D).

        ``near`` is this frame's :meth:`near_gray` when the caller has computed it already.
        """
        near = self.near_gray(depth) if near is None else near
        depth_bgr = None
        if frame_bgr is None or self.layout not in STEREO_LAYOUTS:
            depth_bgr = apply_colormap(255 - near if self.invert else near, self.colormap)
        if self.layout in STEREO_LAYOUTS:
            return self.stereo.compose(self.layout, depth_bgr if frame_bgr is None else frame_bgr, near)
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
