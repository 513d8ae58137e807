"""Flicker-free depth video: a causal, flow-guided temporal filter on the depth itself.

MiDaS predicts every frame on its own, so on video its depth wobbles from frame to frame:
a smooth non-affine field of a few percent of the depth range, on top of the per-frame gain
and offset that :class:`livedepth.render.colorize.StableNormalizer` cancels. :class:`TemporalFilter`
keeps a filtered history and, for every frame:

1. starts over from the frame at a scene cut (:class:`livedepth.render.alignment.SceneCutDetector`,
   shared with ``StableNormalizer``), or when it has no history;
2. computes DIS optical flow (ultrafast preset) from the frame back to the previous one, on
   grey frames of ``flow_size`` pixels on the long side, and a photometric trust: 1 where
   the flow-warped previous frame is within ``photometric[0]`` grey levels of this one,
   falling to 0 at ``photometric[1]``;
3. warps the history (kept at ``work_size`` pixels on the long side) onto the frame and fits
   it to the frame's depth where trusted, ``depth ~ a * warped + c`` (trimmed least squares),
   so that the history is in the frame's own units;
4. blends: with ``r = a * warped + c - depth`` and ``s`` its robust scale (1.4826 times the
   median ``|r|``; ``s`` may fall at once but rise by at most ``noise_rise`` a frame, so a
   missed cut or a failed flow does not pass for noise), the history's weight is ``history``
   (scaled down to 0 as ``s`` falls from ``steady[1]`` to ``steady[0]`` of the depth's P2-P98
   range: a residual that small is the flow's own error on steady depth, and filtering would
   only add it; measured per frame: steady depth 0.01-0.6% (median; up to 1.5% on a fast real
   pan), 2% wobble 2.2-3.9% (median; 1.9% and up)) times the
   trust where ``|r| <= agree * s``, falls linearly to 0 at ``disagree * s``, and is
   0 beyond and outside the previous view. Where they disagree (occlusion, something new,
   flow failure), the current depth wins;
5. adds the correction ``weight * r``, upsampled from ``work_size``, to the full-resolution
   depth: the output keeps the input's detail and its scale (it is depth, not colours).

Deterministic: the same inputs give bitwise the same outputs, at 1 or 2 OpenCV threads alike
(checked by ``benchmarks/temporal_consistency.py``; DIS alone also at 4 and 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from livedepth.render.alignment import SceneCutDetector, trimmed_fit

#: Frames for the flow with a shorter side than this pass through unfiltered: DIS fails on
#: some of them, or crashes (measured with OpenCV 5.0: short sides up to 30 px).
MIN_FLOW_SIDE = 32


@dataclass(eq=False)
class TemporalFilter:
    """Causal temporal filter for depth video: feed ``update(depth, frame_bgr)`` in order.

    One filter per video stream; call :meth:`reset` for a new video. The defaults are the
    measured ones (``benchmarks/temporal_consistency.py``).
    """

    history: float = 0.75  # weight of the warped history where it agrees with the frame
    agree: float = 2.0  # |residual| up to this many robust residual scales: full weight
    disagree: float = 4.0  # from this many on: the current depth alone
    noise_rise: float = 1.25  # the residual scale may grow at most this much a frame
    steady: tuple[float, float] = (0.01, 0.02)  # residual scale / depth range: no filtering, full weight
    photometric: tuple[float, float] = (8.0, 24.0)  # grey-level error of the warped previous frame: full weight, none
    flow_size: int = 160  # long side of the frames the optical flow runs on
    work_size: int = 160  # long side of the kept history and of the correction
    fit_points: int = 4096  # about this many points for the affine fit
    trim: float = 0.8  # share of the fit's smallest residuals kept in the refit

    def __post_init__(self) -> None:
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._cut_detector = SceneCutDetector()
        self.reset()

    @property
    def cuts(self) -> int:
        """Scene cuts seen so far."""
        return self._cut_detector.cuts

    def reset(self) -> None:
        """Forget the history (a new video)."""
        self._history: np.ndarray | None = None
        self._gray: np.ndarray | None = None
        self._noise: float | None = None
        self._cut_detector.reset()

    def update(self, depth: np.ndarray, frame_bgr: np.ndarray) -> np.ndarray:
        """The filtered float32 depth of this frame, at the size and in the units of ``depth``.

        ``frame_bgr`` is the frame the depth was predicted from (BGR or grey uint8, any size
        with the same framing).
        """
        d = np.asarray(depth, np.float32)
        h, w = d.shape
        work = _fit_size(w, h, self.work_size)
        small = cv2.resize(d, work, interpolation=cv2.INTER_AREA) if work != (w, h) else d
        gray = _small_gray(frame_bgr, self.flow_size)
        if min(gray.shape) < MIN_FLOW_SIDE:
            return d.copy()
        change = self._cut_detector.update(small)
        prev, prev_gray = self._history, self._gray
        self._gray = gray
        if change is None or prev is None or prev.shape != small.shape or prev_gray.shape != gray.shape:
            self._history, self._noise = small.copy(), None
            return d.copy()
        flow = self._flow(gray, prev_gray)
        # photometric confidence: 1 where the flow-warped previous frame matches this one
        seen = cv2.remap(prev_gray, flow + _pixel_grid(*gray.shape[::-1]), None, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        ok, bad = self.photometric
        trust = cv2.absdiff(gray, seen).astype(np.float32)
        trust = np.clip((bad - trust) * (1.0 / (bad - ok)), 0.0, 1.0, out=trust)
        if flow.shape[1::-1] != work:
            flow = cv2.resize(flow, work, interpolation=cv2.INTER_LINEAR)
            trust = cv2.resize(trust, work, interpolation=cv2.INTER_LINEAR)
        flow *= np.float32([work[0] / gray.shape[1], work[1] / gray.shape[0]])
        flow += _pixel_grid(*work)
        warped = cv2.remap(prev, flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
        step = max(1, int(np.sqrt(warped.size / self.fit_points)))
        sample = np.where(trust[::step, ::step] > 0.5, warped[::step, ::step], np.nan).ravel()
        fit = _robust_affine(sample, small[::step, ::step].ravel(), self.trim)
        if fit is None:  # nothing of the previous view left to compare with
            self._history, self._noise = small.copy(), None
            return d.copy()
        a, c, scale = fit
        if self._noise is not None:  # a missed cut or a flow failure is not noise: it may rise only slowly
            scale = min(scale, self.noise_rise * abs(a) * self._noise)
        self._noise = scale
        history = self.history * self._wobbling(scale, small[::step, ::step])
        if history == 0.0:  # steady depth: the residual is the flow's own error, nothing to filter
            self._history = small.copy()
            return d.copy()
        resid = cv2.addWeighted(warped, a, small, -1.0, c)  # NaN outside the previous view
        # weight = history * clip((disagree * s - |r|) / ((disagree - agree) * s), 0, 1)
        gain = history / ((self.disagree - self.agree) * scale)
        weight = np.abs(resid)
        weight = cv2.addWeighted(weight, -gain, weight, 0.0, gain * self.disagree * scale)
        correction = np.clip(weight, 0.0, history, out=weight)
        correction *= trust
        correction *= resid
        correction[np.isnan(correction)] = 0.0  # outside the view, or non-finite depth: no history
        self._history = small + correction
        if work == (w, h):
            return d + correction
        out = cv2.resize(correction, (w, h), interpolation=cv2.INTER_LINEAR)
        out += d
        return out

    def _wobbling(self, scale: float, depth: np.ndarray) -> float:
        """0 to 1: where the residual scale, as a share of ``depth``'s P2-P98 range, lies between
        ``steady[0]`` (up to it, the residual is what the flow gets wrong on steady depth:
        filtering would only add that error) and ``steady[1]`` (wobble)."""
        values = depth[np.isfinite(depth)]
        if values.size < 16:
            return 0.0
        lo, hi = np.percentile(values, (2, 98))
        level = scale / max(float(hi - lo), 1e-20)
        low, high = self.steady
        return float(np.clip((level - low) / (high - low), 0.0, 1.0))

    def _flow(self, gray: np.ndarray, prev_gray: np.ndarray) -> np.ndarray:
        """Flow from this frame back to the previous one: ``gray(p) ~ prev_gray(p + flow(p))``."""
        return self._dis.calc(gray, prev_gray, None)


def _fit_size(w: int, h: int, long_side: int) -> tuple[int, int]:
    """``(w, h)`` scaled down (never up) to ``long_side`` pixels on the long side."""
    f = min(1.0, long_side / max(w, h))
    return max(1, round(w * f)), max(1, round(h * f))


def _small_gray(frame: np.ndarray, long_side: int) -> np.ndarray:
    """``frame`` in grey at ``long_side`` pixels: halvings (2x2 means), then an area resize."""
    h, w = frame.shape[:2]
    size = _fit_size(w, h, long_side)
    while frame.shape[1] >= 2 * size[0] and frame.shape[0] >= 2 * size[1]:
        frame = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
    if frame.shape[1::-1] != size:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame


@lru_cache(maxsize=4)
def _pixel_grid(w: int, h: int) -> np.ndarray:
    """``(x, y)`` of every pixel, float32 HxWx2 (shared: never modify it)."""
    grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    grid.flags.writeable = False
    return grid


def _robust_affine(x: np.ndarray, y: np.ndarray, trim: float) -> tuple[float, float, float] | None:
    """``(a, c, s)``: ``y ~ a * x + c`` by :func:`~livedepth.render.alignment.trimmed_fit` on
    the finite pairs, and ``s`` the residuals' robust scale (1.4826 median ``|r|``,
    at least 1e-6 of the mean ``|y|``); None with fewer than 16 finite pairs."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok].astype(np.float64), y[ok].astype(np.float64)
    if x.size < 16:
        return None
    a, c, _, resid, _ = trimmed_fit(x, y, trim)
    return a, c, max(1.4826 * float(np.median(resid)), 1e-6 * float(np.abs(y).mean()), 1e-20)
