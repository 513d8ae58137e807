"""Stereo from depth (depth-image-based rendering) and the 3D layouts composed from it.

A point at column ``x`` with normalised depth ``n`` (0 far, 1 near) appears at ``x + s/2`` in the
left view and ``x - s/2`` in the right view, with ``s = divergence/100 * W * (n - convergence)``:
nearer than ``convergence`` comes out of the screen (crossed disparity), farther sits behind it.

How a view is warped (every row at once, numpy and OpenCV, no per-pixel Python). In the left view
nearer points move further right, so a point is hidden exactly when a point to its left lands at or
beyond it: the visible surface is the running maximum ``U`` of the target columns ``x + s(x)/2``
along the row (a grey dilation as wide as the largest shift, since no point moves farther). ``U``
never decreases, so every target pixel ``p`` has one answer: ``i``, the first source column with
``U >= p``, counted with one comparison per column of possible shift, and the source position
``i - 1 + clip(p + 1 - U(i), 0, 1)``. That is sub-pixel and exact for a plane (linear sampling), and
where a row tears open behind a near edge (a disocclusion) it holds the farther neighbour ``i - 1``
until the last pixel before the near point: holes are filled from the background side, never by
smearing the foreground. A model's depth edges are soft, though (MiDaS predicts at 256 px), and a
soft edge would stretch the foreground-coloured pixels on its ramp into the hole; so the depth is first
dilated towards the disoccluded side by ``W/128`` pixels (the nearer value wins), which moves the
ramp off the foreground. The right view is the same problem mirrored. One bilinear ``cv2.remap``
samples both views. The buffers are kept between frames of one size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from livedepth.core.vocab import ANAGLYPH_MODES

#: The 3D layouts: full and half side by side, full and half top and bottom, red-cyan, colour + depth.

# Eric Dubois' least-squares red-cyan matrices ("Conversion of a stereo pair to anaglyph with the
# least-squares projection method", 2009): rows R, G, B of the anaglyph, columns R, G, B of an eye,
# on linear light; reordered here for BGR pixels (rows and columns reversed).
_DUBOIS_LEFT = np.ascontiguousarray(np.float32([[0.437, 0.449, 0.164], [-0.062, -0.062, -0.024],
                                                 [-0.048, -0.050, -0.017]])[::-1, ::-1])
_DUBOIS_RIGHT = np.ascontiguousarray(np.float32([[-0.011, -0.032, -0.007], [0.377, 0.761, 0.009],
                                                  [-0.026, -0.093, 1.234]])[::-1, ::-1])
#: uint8 -> linear light with a gamma of 2 (close to sRGB; encoding back is then one square root).
_TO_LINEAR = (np.arange(256, dtype=np.float32) / 255) ** 2


def check_stereo(divergence: float, convergence: float) -> None:
    """Raise ``ValueError`` unless ``divergence >= 0`` and ``0 <= convergence <= 1``."""
    if not divergence >= 0:
        raise ValueError(f"divergence must be >= 0, got {divergence}")
    if not 0 <= convergence <= 1:
        raise ValueError(f"convergence must be from 0 to 1, got {convergence}")


class _Solver:
    """Source columns of both views for one size and shift range: the buffers, kept between frames.

    Columns are solved in fixed point, ``1/q`` pixel (``q`` a power of two up to 32, as fine as int16
    holds at this width): half the memory traffic of float32, and exact to ``1/q`` px.
    """

    def __init__(self, height: int, width: int, divergence: float, convergence: float) -> None:
        self.key = (height, width, divergence, convergence)
        self.convergence = convergence
        half = divergence / 100 * width / 2  # the largest shift of a view, in pixels
        # u(x) - x lies in [-half*c, half*(1-c)]: only columns in [p - before, p + after] can decide p
        self.before = math.ceil(half * (1 - convergence))
        self.span = self.before + math.ceil(half * convergence) + 1
        q = 32
        while q > 1 and (width + 2 * self.span + 2) * q > np.iinfo(np.int16).max:
            q //= 2
        if (width + 2 * self.span + 2) * q > np.iinfo(np.int16).max:
            raise ValueError(f"the stereo warp takes up to {2**15 - 2 * self.span - 3} columns, got {width}: "
                             "solve it at a smaller size")
        self.q = q
        rows = 2 * height  # the left view's rows, then the right view's rows mirrored
        levels = (np.arange(256) / 255 - convergence) * half * q
        self.lut = np.rint(levels).astype(np.int16)  # q * s/2 of each grey level
        self.scale = np.float32(half * q)
        self.columns = np.tile(np.arange(width, dtype=np.int16) * np.int16(q), (rows, 1))  # q * x
        self.pixels = np.tile(np.arange(width, dtype=np.int16), (rows, 1))
        self.kernel = np.ones((1, self.span + 1), np.uint8)
        # x takes the nearest depth of x .. x + W/128: soft near edges move off the disoccluded side
        self.edge = np.ones((1, max(1, round(width / 128)) + 1), np.uint8)
        self.target = np.empty((rows, width), np.int16)  # q * u(x)
        self.reach = np.empty((rows, width), np.int16)  # q * U(x), the running maximum of u
        # q * (U(x) - x); before the row a value no shift reaches p with, after it one every shift does
        self.lead = np.full((rows, width + self.span), q * (self.before + 1), np.int16)
        self.lead[:, : self.before] = -q * (self.span + 1)
        self.mask = np.empty((rows, width), np.uint8)
        self.count = np.empty((rows, width), np.int8 if self.span < 127 else np.int16)
        self.found = np.empty((rows, width), np.int16)  # q * (U(i) - i) at the first i with U(i) >= p
        self.lag = np.empty((rows, width), np.int16)  # i - p, then i
        self.past = np.empty((rows, width), np.int16)  # q * (U(i) - p), then clipped to [0, q]
        self.source = np.empty((rows, width), np.float32)

    def solve(self, near: np.ndarray) -> np.ndarray:
        """Float32 ``2H x W``: the source column of every pixel of the left view, then the right view."""
        h, w = near.shape
        q, before, span, lead = self.q, self.before, self.span, self.lead
        target = self.target
        if near.dtype == np.uint8:
            cv2.LUT(near, self.lut, dst=target[:h])
        else:
            n = np.clip(np.nan_to_num(near.astype(np.float32, copy=False), nan=0.0), 0.0, 1.0)
            target[:h] = np.rint((n - np.float32(self.convergence)) * self.scale)
        cv2.flip(target[:h], 1, dst=target[h:])
        cv2.dilate(target, self.edge, dst=target, anchor=(0, 0))
        np.add(target, self.columns, out=target)
        cv2.dilate(target, self.kernel, dst=self.reach, anchor=(span, 0))
        np.subtract(self.reach, self.columns, out=lead[:, before : before + w])
        # p's first column i = p - before + j: the first shift j with U(p - before + j) >= p. U never
        # decreases, so that is the number of shifts that fall short; the last shift always reaches.
        found, count, mask = self.found, self.count, self.mask
        np.copyto(found, lead[:, span - 1 : span - 1 + w])
        count.fill(0)
        for j in range(span - 2, -1, -1):
            cv2.compare(lead[:, j : j + w], q * (before - j), cv2.CMP_GE, dst=mask)
            cv2.copyTo(lead[:, j : j + w], mask, found)
            np.add(count, mask.view(np.int8), out=count)  # a reaching shift is 255, i.e. -1
        lag, past = self.lag, self.past
        np.add(count, np.int16(span - 1 - before), out=lag)
        np.multiply(lag, np.int16(q), out=past)
        np.add(past, found, out=past)
        cv2.min(past, q, dst=past)  # source = i - 1 + clip(p + 1 - U(i), 0, 1)
        np.add(lag, self.pixels, out=lag)
        source = self.source
        cv2.addWeighted(lag[:h], 1.0, past[:h], -1.0 / q, 0.0, dst=source[:h], dtype=cv2.CV_32F)
        mirrored = cv2.addWeighted(lag[h:], -1.0, past[h:], 1.0 / q, w - 1.0, dtype=cv2.CV_32F)
        cv2.flip(mirrored, 1, dst=source[h:])
        return source


class _Sampler:
    """Samples both views from a frame at their source columns; the maps' buffers for one frame size.

    OpenCV's remap with float maps is fastest on four channels, so the frame is sampled as BGRA.
    """

    def __init__(self, height: int, width: int) -> None:
        self.key = (height, width)
        self.rows = np.repeat(np.tile(np.arange(height, dtype=np.float32), 2), width).reshape(2 * height, width)
        self.columns = np.empty((2 * height, width), np.float32)
        self.frame = np.empty((height, width, 4), np.uint8)
        self.views = np.empty((2 * height, width, 4), np.uint8)

    def sample(self, frame_bgr: np.ndarray, source: np.ndarray) -> np.ndarray:
        """``2H x W``: the left view above the right one. ``source`` may come from a narrower warp."""
        h, w = self.key
        if source.shape[1] != w:
            source = self._upsampled(source)
        cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2BGRA, dst=self.frame)
        cv2.remap(self.frame, source, self.rows, cv2.INTER_LINEAR, dst=self.views,
                  borderMode=cv2.BORDER_REPLICATE)
        return cv2.cvtColor(self.views, cv2.COLOR_BGRA2BGR)

    def _upsampled(self, source: np.ndarray) -> np.ndarray:
        """Source columns solved at a lower resolution, at the frame's size and in its pixels."""
        h, w = self.key
        small_h = source.shape[0] // 2
        scale = w / source.shape[1]
        for view in (0, 1):  # each view alone: no blending across the seam between them
            cv2.resize(source[view * small_h : (view + 1) * small_h], (w, h),
                       dst=self.columns[view * h : (view + 1) * h], interpolation=cv2.INTER_LINEAR)
        self.columns *= np.float32(scale)
        self.columns += np.float32((scale - 1) / 2)  # pixel centres: x = (x_small + 0.5) * scale - 0.5
        return self.columns


class StereoWarp:
    """Left and right views of a frame from its normalised depth; keeps its buffers between frames.

    ``size`` (the warp's width, 0 for the frame's) solves the source columns at a lower resolution
    and upsamples them; the views are still sampled from the full frame.
    """

    def __init__(self, divergence: float = 2.0, convergence: float = 0.5, size: int = 0) -> None:
        check_stereo(divergence, convergence)
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.divergence, self.convergence, self.size = divergence, convergence, size
        self._solver: _Solver | None = None
        self._sampler: _Sampler | None = None

    def views(self, frame_bgr: np.ndarray, near: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(left, right)``, each the frame's size. ``near``: float in [0, 1] (1 nearest) or uint8
        grey levels (``n = grey / 255``), resized to the frame if it is not its size."""
        h, w = frame_bgr.shape[:2]
        if near.shape != (h, w):
            near = cv2.resize(near, (w, h), interpolation=cv2.INTER_LINEAR)
        small_w = self.size if 0 < self.size < w else w
        small_h = max(1, round(h * small_w / w))
        if small_w != w:
            near = cv2.resize(near, (small_w, small_h), interpolation=cv2.INTER_AREA)
        key = (small_h, small_w, self.divergence, self.convergence)
        if self._solver is None or self._solver.key != key:
            self._solver = _Solver(*key)
        if self._sampler is None or self._sampler.key != (h, w):
            self._sampler = _Sampler(h, w)
        both = self._sampler.sample(frame_bgr, self._solver.solve(near))
        return both[:h], both[h:]


def stereo_views(frame_bgr: np.ndarray, depth_n: np.ndarray, divergence: float = 2.0,
                 convergence: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The left and right views of ``frame_bgr`` (BGR uint8) for its normalised depth ``depth_n``
    (float in [0, 1], 1 nearest, or uint8 grey levels): see :mod:`livedepth.render.stereo`."""
    return StereoWarp(divergence, convergence).views(frame_bgr, depth_n)


def anaglyph(left: np.ndarray, right: np.ndarray, mode: str = "dubois") -> np.ndarray:
    """A red-cyan anaglyph: red from the ``left`` view, green and blue from the ``right`` view.

    ``color`` copies the channels; ``gray`` uses each view's luma; ``dubois`` applies Dubois'
    least-squares matrices on linear light (gamma 2; less retinal rivalry and ghosting than ``color``).
    """
    if mode == "color":
        out = right.copy()
        out[..., 2] = left[..., 2]
        return out
    if mode == "gray":
        left_y, right_y = cv2.cvtColor(left, cv2.COLOR_BGR2GRAY), cv2.cvtColor(right, cv2.COLOR_BGR2GRAY)
        return cv2.merge([right_y, right_y, left_y])
    if mode != "dubois":
        raise ValueError(f"unknown anaglyph mode {mode!r}; choose from {', '.join(ANAGLYPH_MODES)}")
    mixed = cv2.transform(cv2.LUT(left, _TO_LINEAR), _DUBOIS_LEFT)
    mixed += cv2.transform(cv2.LUT(right, _TO_LINEAR), _DUBOIS_RIGHT)
    np.maximum(mixed, 0.0, out=mixed)
    return cv2.convertScaleAbs(cv2.sqrt(mixed), alpha=255.0)  # rounds and saturates at 255


class Stereo:
    """The 3D layouts of :data:`~livedepth.core.vocab.STEREO_LAYOUTS`, composed from one :class:`StereoWarp`.

    ``swap_eyes`` exchanges the views (cross-eyed viewing of ``sbs``); ``anaglyph`` is the mode of
    the ``anaglyph`` layout. ``rgbd`` is the frame beside its grey depth (white near) and needs no
    warp. Half layouts squeeze each eye to half the width (``half-sbs``) or height (``half-tab``),
    rounded up, so both eyes have one size (an odd side grows by one pixel).
    """

    def __init__(self, divergence: float = 2.0, convergence: float = 0.5, anaglyph: str = "dubois",
                 swap_eyes: bool = False, size: int = 0) -> None:
        if anaglyph not in ANAGLYPH_MODES:
            raise ValueError(f"unknown anaglyph mode {anaglyph!r}; choose from {', '.join(ANAGLYPH_MODES)}")
        self.warp = StereoWarp(divergence, convergence, size)
        self.anaglyph, self.swap_eyes = anaglyph, swap_eyes

    def compose(self, layout: str, frame_bgr: np.ndarray, near: np.ndarray) -> np.ndarray:
        """The ``layout`` image of ``frame_bgr`` with its normalised depth ``near`` (uint8 grey, 255 nearest)."""
        if layout == "rgbd":
            h, w = frame_bgr.shape[:2]
            grey = near if near.shape == (h, w) else cv2.resize(near, (w, h), interpolation=cv2.INTER_LINEAR)
            return np.hstack([frame_bgr, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)])
        left, right = self.warp.views(frame_bgr, near)
        if self.swap_eyes:
            left, right = right, left
        if layout == "sbs":
            return np.hstack([left, right])
        if layout == "tab":
            return np.vstack([left, right])
        if layout == "half-sbs":
            size = (-(-left.shape[1] // 2), left.shape[0])
            return np.hstack([cv2.resize(v, size, interpolation=cv2.INTER_LINEAR) for v in (left, right)])
        if layout == "half-tab":
            size = (left.shape[1], -(-left.shape[0] // 2))
            return np.vstack([cv2.resize(v, size, interpolation=cv2.INTER_LINEAR) for v in (left, right)])
        if layout == "anaglyph":
            return anaglyph(left, right, self.anaglyph)
        raise ValueError(f"unknown stereo layout {layout!r}")
