"""Temporal consistency of a depth video, with no ground truth.

For each pair of consecutive frames, DIS optical flow on the RGB frames warps the previous
depth onto the current frame. Pixels are kept where the forward and backward flows agree
and the warped previous image matches the current one (intensities in [0, 1], a
photometric gate), so occlusions and flow failures do not count. Depth is robust-normalised
``n(D) = (D - median) / mean|D - median|`` with the median and mean absolute deviation of
the **whole video**, one affine map for every frame: per-frame gain/offset jumps (flicker)
raise TC, while a global scale or offset of the whole video leaves it unchanged.

``TC = mean over t of the masked mean of |n(D_t) - warp(n(D_{t-1}))|``.

The clipped fraction is the share of pixels at the ends of an integer depth range (0 or
255 for 8-bit maps, 0 or 65535 for 16-bit maps); float depth has none to report.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from livedepth.render.colorize import colormap_lut, colormap_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsistencyReport:
    """What :func:`temporal_consistency` measured."""

    tc: float  # mean warped |n(D_t) - n(D_{t-1})|, in units of the video's mean absolute deviation
    clipped_fraction: float | None  # share of pixels at 0 or the dtype's maximum; None for float depth
    frames: int
    pairs: int  # frame pairs that had valid (unoccluded) pixels
    valid_fraction: float  # mean share of pixels that passed the occlusion masks


def _gray(frame_bgr: np.ndarray) -> np.ndarray:
    if frame_bgr.ndim == 3:
        frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    return frame_bgr


class TemporalConsistency:
    """Streaming TC accumulator: feed ``update(frame_bgr, depth)`` in order, then ``result()``.

    Memory stays bounded: the previous frame, and a fixed-size random sample of depth values
    for the video's median and mean absolute deviation.
    """

    def __init__(
        self,
        photometric_tol: float = 0.05,
        fb_alpha: float = 0.01,
        fb_beta: float = 0.5,
        sample_size: int = 1_000_000,
        sample_step: int = 4,
        seed: int = 0,
    ) -> None:
        self.photometric_tol = photometric_tol
        self.fb_alpha = fb_alpha
        self.fb_beta = fb_beta
        self.sample_step = sample_step
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._rng = np.random.default_rng(seed)
        self._sample = np.empty(sample_size, np.float64)
        self._seen = 0
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._residuals: list[float] = []
        self._valid: list[float] = []
        self._frames = 0
        self._clipped = 0
        self._pixels = 0
        self._integer = True

    def _add_sample(self, depth: np.ndarray) -> None:
        values = depth[:: self.sample_step, :: self.sample_step].ravel().astype(np.float64)
        values = values[np.isfinite(values)]
        cap = self._sample.size
        free = max(0, cap - self._seen)
        head, tail = values[:free], values[free:]
        self._sample[self._seen : self._seen + head.size] = head
        if tail.size:  # reservoir sampling (algorithm R, vectorised)
            index = np.arange(self._seen + head.size, self._seen + values.size) + 1
            slots = (self._rng.random(tail.size) * index).astype(np.int64)
            hit = slots < cap
            self._sample[slots[hit]] = tail[hit]
        self._seen += values.size

    def update(self, frame_bgr: np.ndarray, depth: np.ndarray) -> None:
        """Add the next frame (BGR or grey uint8) and its depth (any real dtype, same size or resized)."""
        gray = _gray(frame_bgr)
        if gray.shape != depth.shape:
            gray = cv2.resize(gray, depth.shape[::-1], interpolation=cv2.INTER_AREA)
        if np.issubdtype(depth.dtype, np.integer):
            top = np.iinfo(depth.dtype).max
            self._clipped += int(np.count_nonzero((depth == 0) | (depth == top)))
        else:
            self._integer = False
        self._pixels += depth.size
        self._frames += 1
        d = depth.astype(np.float32)
        self._add_sample(d)
        if self._prev is not None:
            self._pair(*self._prev, gray, d)
        self._prev = (gray, d)

    def _pair(self, g0: np.ndarray, d0: np.ndarray, g1: np.ndarray, d1: np.ndarray) -> None:
        h, w = d1.shape
        back = self._dis.calc(g1, g0, None)  # current pixel -> where it was in the previous frame
        fwd = self._dis.calc(g0, g1, None)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        mx, my = gx + back[..., 0], gy + back[..., 1]
        inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = ((back + fwd_at) ** 2).sum(-1)
        mag = (back**2).sum(-1) + (fwd_at**2).sum(-1)
        consistent = err <= self.fb_alpha * mag + self.fb_beta
        i0 = cv2.remap(g0.astype(np.float32) / 255.0, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        photometric = np.abs(g1.astype(np.float32) / 255.0 - i0) <= self.photometric_tol
        warped = cv2.remap(d0, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask = inside & consistent & photometric & np.isfinite(warped) & np.isfinite(d1)
        valid = int(np.count_nonzero(mask))
        self._valid.append(valid / mask.size)
        if valid:
            self._residuals.append(float(np.abs(d1[mask] - warped[mask]).mean(dtype=np.float64)))

    def result(self) -> ConsistencyReport:
        """The report for every frame fed so far."""
        sample = self._sample[: min(self._seen, self._sample.size)]
        spread = 0.0
        if sample.size:
            spread = float(np.abs(sample - np.median(sample)).mean())
        raw = float(np.mean(self._residuals)) if self._residuals else 0.0
        tc = raw / spread if spread > 0 else 0.0
        clipped = self._clipped / self._pixels if self._integer and self._pixels else None
        return ConsistencyReport(
            tc=tc,
            clipped_fraction=clipped,
            frames=self._frames,
            pairs=len(self._residuals),
            valid_fraction=float(np.mean(self._valid)) if self._valid else 0.0,
        )


def temporal_consistency(pairs: Iterable[tuple[np.ndarray, np.ndarray]], **options: float) -> ConsistencyReport:
    """TC and clipped fraction of a sequence of ``(frame_bgr, depth)`` pairs."""
    meter = TemporalConsistency(**options)
    for frame, depth in pairs:
        meter.update(frame, depth)
    return meter.result()


class ColormapDecoder:
    """Turns colorized depth (BGR) back into grey levels 0..255 by nearest colormap colour.

    Exact colormap colours decode exactly; others (video compression) go through a
    6-bit-per-channel nearest-colour table.
    """

    def __init__(self, colormap: str) -> None:
        self.colormap = colormap
        lut = colormap_lut(colormap).astype(np.int32)
        keys = (lut[:, 0] << 16) | (lut[:, 1] << 8) | lut[:, 2]
        order = np.argsort(keys, kind="stable")
        self._keys, self._index = keys[order], order.astype(np.uint8)
        centres = np.arange(64, dtype=np.int32) * 4 + 2
        table = np.empty((64, 64, 64), np.uint8)
        for b in range(64):
            grid = np.stack(np.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)
            cube = np.concatenate([np.full((grid.shape[0], 1), centres[b]), grid], 1)
            dist = ((cube[:, None, :] - lut[None]) ** 2).sum(-1)
            table[b] = dist.argmin(1).reshape(64, 64).astype(np.uint8)
        self._table = table

    def decode(self, bgr: np.ndarray) -> np.ndarray:
        """BGR uint8 HxWx3 -> uint8 HxW grey levels."""
        px = bgr.astype(np.int32)
        keys = (px[..., 0] << 16) | (px[..., 1] << 8) | px[..., 2]
        pos = np.clip(np.searchsorted(self._keys, keys), 0, self._keys.size - 1)
        exact = self._keys[pos] == keys
        q = px >> 2
        out = self._table[q[..., 0], q[..., 1], q[..., 2]]
        out[exact] = self._index[pos[exact]]
        return out


def guess_colormap(bgr: np.ndarray, names: Iterable[str] | None = None) -> str:
    """The colormap whose colours are nearest to the pixels of ``bgr`` (a colorized depth image)."""
    pixels = bgr.reshape(-1, 3)
    sample = pixels[:: max(1, pixels.shape[0] // 4096)].astype(np.int32)

    def misfit(name: str) -> float:
        lut = colormap_lut(name).astype(np.int32)
        return float(((sample[:, None, :] - lut[None]) ** 2).sum(-1).min(1).mean())

    return min(names or colormap_names(), key=misfit)


def decode_depth_frames(frames: Iterable[np.ndarray], colormap: str = "auto") -> Iterator[np.ndarray]:
    """Colorized depth frames -> uint8 grey levels; ``auto`` guesses the colormap from the first frame."""
    decoder: ColormapDecoder | None = None
    for frame in frames:
        if frame.ndim == 2:
            yield frame
            continue
        if decoder is None:
            name = guess_colormap(frame) if colormap == "auto" else colormap
            log.info("decoding depth colours with the %s colormap", name)
            decoder = ColormapDecoder(name)
        yield decoder.decode(frame)
