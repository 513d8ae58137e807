"""A synthetic, real-looking clip with ground-truth depth: textured scene, camera pan, an object moving in.

:func:`midas_like` turns the clip's true inverse depth into a proxy of what MiDaS outputs:
per-frame gain and offset jitter plus small multiplicative noise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np


def _noise(rng: np.random.Generator, h: int, w: int, octaves: int = 5) -> np.ndarray:
    """Multi-octave value noise in [0, 1], float32 HxW."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        coarse = rng.random((max(2, h * cells // w), cells)).astype(np.float32)
        out += amp * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.55
    out /= total
    return (out - out.min()) / max(float(out.max() - out.min()), 1e-6)


@dataclass(frozen=True)
class SceneClip:
    """Parameters of the clip; iterate :meth:`frames` for ``(frame_bgr, inverse_depth)`` pairs."""

    width: int = 640
    height: int = 480
    frames_count: int = 90
    pan_px_per_frame: float = 3.0
    object_speed: float = 7.0
    seed: int = 0
    object_return: int = 0  # if > 0: the object walks in for this many frames, then back out, and so on
    relief: bool = False  # smooth ramps everywhere (walls at varying distance, a ceiling) instead of a flat wall

    def _base_depth(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        if not self.relief:
            # a ground plane: far at the horizon (40% down), nearer towards the bottom; a flat far wall above
            return np.where(yy < 0.4, 0.2, 0.2 + 1.6 * (yy - 0.4)).astype(np.float32) * np.ones((1, w), np.float32)
        # walls at smoothly varying distance along the pan, a ceiling getting nearer towards the top,
        # and the ground plane getting nearer towards the bottom: no large flat areas
        wall = 0.15 + 0.25 * _noise(rng, 2, w, 2)[:1]
        return (wall + np.where(yy < 0.4, 0.6 * (0.4 - yy), 1.6 * (yy - 0.4))).astype(np.float32)

    def world(self) -> tuple[np.ndarray, np.ndarray]:
        """The panorama (BGR uint8) and its inverse depth (float32), wider than the view by the pan."""
        rng = np.random.default_rng(self.seed)
        h = self.height
        w = self.width + int(np.ceil(self.pan_px_per_frame * self.frames_count)) + 8
        depth = self._base_depth(rng, h, w)
        tint = np.stack([_noise(rng, h, w, 4) for _ in range(3)], -1)
        detail = _noise(rng, h, w, 7)[..., None]
        image = 0.35 + 0.35 * tint * detail + 0.3 * detail
        image[: int(0.4 * h)] *= np.array([1.1, 0.95, 0.8], np.float32)  # bluish sky-ish wall
        ground = depth.copy()
        for _ in range(7):  # boxes standing on the ground, nearer than the wall
            bw, bh = int(rng.integers(60, 140)), int(rng.integers(80, 200))
            x0 = int(rng.integers(0, w - bw))
            base = int(rng.integers(int(0.5 * h), h))
            y0 = max(0, base - bh)
            near = float(ground[base - 1, x0 : x0 + bw].max()) if self.relief else 0.2 + 1.6 * (base / h - 0.4)
            depth[y0:base, x0 : x0 + bw] = np.maximum(depth[y0:base, x0 : x0 + bw], near)
            colour = rng.random(3).astype(np.float32)
            image[y0:base, x0 : x0 + bw] = 0.25 + 0.5 * colour * (0.6 + 0.4 * detail[y0:base, x0 : x0 + bw])
        bgr = np.clip(image * 255, 0, 255).astype(np.uint8)
        return cv2.GaussianBlur(bgr, (3, 3), 0), depth

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(frame_bgr uint8 HxWx3, inverse depth float32 HxW)`` for every frame."""
        world_bgr, world_depth = self.world()
        rng = np.random.default_rng(self.seed + 1)
        radius = self.height // 5
        obj = _noise(rng, 2 * radius, 2 * radius, 6)
        obj_bgr = np.clip(np.stack([40 + 60 * obj, 120 + 100 * obj, 200 + 50 * obj], -1), 0, 255).astype(np.uint8)
        yy, xx = np.mgrid[-radius:radius, -radius:radius]
        disc = (xx**2 + yy**2) <= radius**2
        obj_depth = 2.2 + 0.3 * np.sqrt(np.clip(1 - (xx**2 + yy**2) / radius**2, 0, 1)).astype(np.float32)
        for t in range(self.frames_count):
            shift = np.float32([[1, 0, -self.pan_px_per_frame * t], [0, 1, 0]])
            size = (self.width, self.height)
            frame = cv2.warpAffine(world_bgr, shift, size, flags=cv2.INTER_LINEAR)
            depth = cv2.warpAffine(world_depth, shift, size, flags=cv2.INTER_LINEAR)
            steps = t
            if self.object_return > 0:  # a triangle wave: in, out, in again
                steps = self.object_return - abs(t % (2 * self.object_return) - self.object_return)
            cx = int(self.width + radius - self.object_speed * steps)
            cy = int(0.62 * self.height)
            x0, y0 = cx - radius, cy - radius
            xs, xe = max(0, x0), min(self.width, x0 + 2 * radius)
            if xe > xs:
                region = (slice(y0, y0 + 2 * radius), slice(xs, xe))
                sub = disc[:, xs - x0 : xe - x0]
                frame[region][sub] = obj_bgr[:, xs - x0 : xe - x0][sub]
                depth[region][sub] = obj_depth[:, xs - x0 : xe - x0][sub]
            yield frame, depth


def midas_like(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    seed: int = 0,
    gain: float = 0.1,
    offset: float = 0.1,
    noise: float = 0.01,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A MiDaS-like proxy of ``(frame, true inverse depth)`` pairs: ``s_t * D * (1 + e) + b_t``.

    ``s_t`` is uniform in ``1 +- gain`` and ``b_t`` in ``+- offset`` times the depth's standard
    deviation, drawn anew for every frame; ``e`` is Gaussian noise of std ``noise``, drawn at
    a quarter of the resolution and upsampled (MiDaS predicts at 256 px).
    """
    rng = np.random.default_rng(seed)
    for frame, depth in pairs:
        h, w = depth.shape
        field = rng.normal(0.0, noise, (max(1, h // 4), max(1, w // 4))).astype(np.float32)
        e = cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)
        s, b = rng.uniform(1 - gain, 1 + gain), rng.uniform(-offset, offset) * float(depth.std())
        yield frame, (s * depth * (1 + e) + b).astype(np.float32)


def tc_by_mode(pairs: Iterable[tuple[np.ndarray, np.ndarray]], modes: tuple[str, ...] = ("frame", "stable")) -> dict:
    """Temporal consistency of the colours each normalisation mode gives for (frame, depth) pairs."""
    from livedepth.render.colorize import Colorizer
    from livedepth.render.metrics import temporal_consistency

    pairs = list(pairs)
    report = {}
    for mode in modes:
        colorizer = Colorizer(normalize=mode)
        report[mode] = temporal_consistency([(f, colorizer.normalize(d)) for f, d in pairs])
    return report
