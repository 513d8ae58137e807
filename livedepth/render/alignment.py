"""Aligning one depth map to the previous one: trimmed line fits, global shifts and scene cuts.

MiDaS predicts every frame on its own scale and shift. The normaliser
(:class:`livedepth.render.colorize.StableNormalizer`) and the temporal filter
(:class:`livedepth.render.temporal.TemporalFilter`) both carry state from frame to frame, so both
fit the current depth to the previous one with :func:`trimmed_fit`, and both start over at the
scene cuts :class:`SceneCutDetector` finds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np


class LineFit(NamedTuple):
    """``y ~ a * x + c`` and what the fit kept."""

    a: float
    c: float
    keep: np.ndarray  # the inliers of the last round: the ``trim`` share of smallest residuals
    resid: np.ndarray  # ``|y - (a * x + c)|`` of every point
    flat: bool  # ``x`` had no spread in some round (that round kept the previous slope)


def trimmed_fit(x: np.ndarray, y: np.ndarray, trim: float, rounds: int = 2) -> LineFit:
    """``y ~ a * x + c`` by least squares, refitted ``rounds`` times on the ``trim`` share of
    smallest residuals (an object moving, pixels uncovered by a pan drop out)."""
    keep = np.ones(x.size, bool)
    a, c, flat = 1.0, 0.0, False
    for _ in range(rounds):
        xk, yk = x[keep], y[keep]
        xm, ym = xk.mean(), yk.mean()
        var = float(((xk - xm) ** 2).sum())
        if var > 1e-20:
            a = float(((xk - xm) * (yk - ym)).sum() / var)
        else:
            flat = True
        c = float(ym - a * xm)
        resid = np.abs(y - (a * x + c))
        keep = inliers(resid, trim)
    return LineFit(a, c, keep, resid, flat)


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
    :class:`livedepth.render.temporal.TemporalFilter`.
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
        frame, and ``StableNormalizer``'s bounds drift.
        """
        if self.motion:
            u, v = _global_shift(prev, cur, self.trim) or (0.0, 0.0)
            if max(abs(u), abs(v)) > 0.25 * min(prev.shape):
                return 1.0, 0.0, 0.0  # more than a quarter of the view in one frame: a cut
            prev, cur = _translate(prev, u / 2, v / 2)[1:-1, 1:-1], _translate(cur, -u / 2, -v / 2)[1:-1, 1:-1]
        x, y = prev.ravel(), cur.ravel()
        a, c, keep, _, flat = trimmed_fit(x, y, self.trim)
        if flat:
            return 1.0, c, 0.0
        xk, yk = x[keep], y[keep]
        if xk.size <= 2 or xk.std() <= 0 or yk.std() <= 0:
            return a, c, 0.0
        r = float(np.corrcoef(xk, yk)[0, 1])
        # the least-squares slope shrinks by the correlation (noise in both maps), which would
        # narrow the bounds every frame; the symmetric slope std(y)/std(x) of the inliers does not
        a = float(np.sign(r) * yk.std() / xk.std())
        return a, float(yk.mean() - a * xk.mean()), r



def _translate(grid: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``grid`` moved by ``(dx, dy)`` cells (bilinear, edges repeated)."""
    m = np.float64([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(grid, m, grid.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def inliers(resid: np.ndarray, keep: float) -> np.ndarray:
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
        keep = inliers(np.abs(target - design @ coef), trim)
    if not np.isfinite(coef).all() or abs(coef[0]) <= 1e-12:
        return None
    return float(-coef[2] / coef[0]), float(-coef[3] / coef[0])
