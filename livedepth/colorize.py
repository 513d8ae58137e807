"""The one place where depth becomes pixels: normalisation, colormaps and layouts."""

from __future__ import annotations

import cv2
import numpy as np

from livedepth.errors import LivedepthError

LAYOUTS = ("depth", "side", "overlay")
NORMALIZE_MODES = ("frame", "stable", "fixed")
DEFAULT_COLORMAP = "inferno"


def colormap_names() -> list[str]:
    """Every OpenCV colormap by lower-case name, plus ``gray``."""
    names = [k[len("COLORMAP_"):].lower() for k in dir(cv2) if k.startswith("COLORMAP_")]
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


def apply_colormap(gray: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """uint8 HxW -> BGR uint8 HxWx3 with an OpenCV colormap (or plain gray)."""
    name = check_colormap(colormap)
    if name == "gray":
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    return cv2.applyColorMap(gray, getattr(cv2, f"COLORMAP_{name.upper()}"))


def compose(frame_bgr: np.ndarray | None, depth_bgr: np.ndarray, layout: str, alpha: float = 0.5) -> np.ndarray:
    """Arrange the colorized depth with the input frame: ``depth``, ``side`` or ``overlay``."""
    check_layout(layout)
    if layout == "depth" or frame_bgr is None:
        return depth_bgr
    if frame_bgr.shape[:2] != depth_bgr.shape[:2]:
        frame_bgr = cv2.resize(frame_bgr, depth_bgr.shape[1::-1], interpolation=cv2.INTER_AREA)
    if layout == "side":
        return np.hstack([frame_bgr, depth_bgr])
    return cv2.addWeighted(depth_bgr, alpha, frame_bgr, 1.0 - alpha, 0.0)


class Colorizer:
    """Turns depth maps into displayable BGR frames with a chosen colormap and layout.

    ``normalize`` is ``frame`` (robust percentiles of each frame), ``stable`` (the
    percentile bounds smoothed over time, for video) or ``fixed`` (``value_range``).
    ``invert`` flips the colormap so that far is bright.
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
        smoothing: float = 0.1,
    ) -> None:
        if normalize not in NORMALIZE_MODES:
            raise LivedepthError(f"unknown normalisation {normalize!r}; choose from {', '.join(NORMALIZE_MODES)}")
        if normalize == "fixed" and value_range is None:
            raise LivedepthError("--normalize fixed needs --range LO,HI")
        self.colormap = check_colormap(colormap)
        self.layout = check_layout(layout)
        self.alpha = alpha
        self.normalize_mode = normalize
        self.value_range = value_range
        self.invert = invert
        self.percentiles = percentiles
        self.smoothing = smoothing
        self._bounds: tuple[float, float] | None = None

    def reset(self) -> None:
        """Forget temporal state (call at a scene cut or a new video)."""
        self._bounds = None

    def normalize(self, depth: np.ndarray) -> np.ndarray:
        """Depth -> uint8 HxW."""
        if self.normalize_mode == "fixed":
            lo, hi = self.value_range
        else:
            lo, hi = percentile_bounds(depth, *self.percentiles)
            if self.normalize_mode == "stable" and self._bounds is not None:
                a = self.smoothing
                lo, hi = (1 - a) * self._bounds[0] + a * lo, (1 - a) * self._bounds[1] + a * hi
            self._bounds = (lo, hi)
        gray = scale_to_uint8(depth, lo, hi)
        return 255 - gray if self.invert else gray

    def render(self, depth: np.ndarray, frame_bgr: np.ndarray | None = None) -> np.ndarray:
        """The BGR image for ``depth`` (and its input frame, for side and overlay)."""
        return compose(frame_bgr, apply_colormap(self.normalize(depth), self.colormap), self.layout, self.alpha)

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
