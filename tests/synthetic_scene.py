"""A synthetic, real-looking clip with ground-truth depth: textured scene, camera pan, an object moving in."""

from __future__ import annotations

from collections.abc import Iterator
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

    def world(self) -> tuple[np.ndarray, np.ndarray]:
        """The panorama (BGR uint8) and its inverse depth (float32), wider than the view by the pan."""
        rng = np.random.default_rng(self.seed)
        h = self.height
        w = self.width + int(np.ceil(self.pan_px_per_frame * self.frames_count)) + 8
        yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        # a ground plane: far at the horizon (40% down), nearer towards the bottom; a far wall above
        depth = np.where(yy < 0.4, 0.2, 0.2 + 1.6 * (yy - 0.4)).astype(np.float32) * np.ones((1, w), np.float32)
        tint = np.stack([_noise(rng, h, w, 4) for _ in range(3)], -1)
        detail = _noise(rng, h, w, 7)[..., None]
        image = 0.35 + 0.35 * tint * detail + 0.3 * detail
        image[: int(0.4 * h)] *= np.array([1.1, 0.95, 0.8], np.float32)  # bluish sky-ish wall
        for _ in range(7):  # boxes standing on the ground, nearer than the wall
            bw, bh = int(rng.integers(60, 140)), int(rng.integers(80, 200))
            x0 = int(rng.integers(0, w - bw))
            base = int(rng.integers(int(0.5 * h), h))
            y0 = max(0, base - bh)
            near = 0.2 + 1.6 * (base / h - 0.4)
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
            cx = int(self.width + radius - self.object_speed * t)
            cy = int(0.62 * self.height)
            x0, y0 = cx - radius, cy - radius
            xs, xe = max(0, x0), min(self.width, x0 + 2 * radius)
            if xe > xs:
                region = (slice(y0, y0 + 2 * radius), slice(xs, xe))
                sub = disc[:, xs - x0 : xe - x0]
                frame[region][sub] = obj_bgr[:, xs - x0 : xe - x0][sub]
                depth[region][sub] = obj_depth[:, xs - x0 : xe - x0][sub]
            yield frame, depth
