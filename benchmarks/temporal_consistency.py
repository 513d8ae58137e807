"""Temporal consistency of frame vs stable normalisation on synthetic clips.

Every clip comes from ``tests/synthetic_scene.py`` (textured scene, camera pan, an object
moving in). Conditions:

- A: the real model with the synthetic test weights (its depth is not coherent between frames);
- B: A with per-frame gain/offset jitter;
- C, D: the flat-wall clip's ground truth with strong jitter (with / without the object);
  a crude proxy: 40% of the view is one flat depth, so P2 sits on it and ``frame`` clips it;
- E, F, G: the MiDaS-like proxy: the ramps-everywhere clip's ground truth as
  ``s_t * D * (1 + e) + b_t`` (``midas_like``: gain and offset +-10%, ``--noise`` 1%); E an object
  walks in and stays, F pan only, G the object walks in and out every 15 frames.

For each normaliser it prints TC and the clipped fraction of the displayed colour output
(the colormap decoded back to grey levels; exact for these lossless frames) and the median
time of ``bounds()`` per 640x480 frame. ``oracle`` (proxies only) knows each frame's true
gain and offset and keeps fixed bounds: the noise floor no causal method can beat.

    .venv/bin/python benchmarks/temporal_consistency.py [--frames 40] [--proxies-only] [--noise 0.01]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from golden import save_synthetic_weights
from synthetic_scene import SceneClip, midas_like

from livedepth.colorize import (
    FrameNormalizer,
    Normalizer,
    StableNormalizer,
    apply_colormap,
    scale_to_uint8,
)
from livedepth.estimator import DepthEstimator
from livedepth.metrics import ColormapDecoder, temporal_consistency

CANDIDATES: dict[str, Callable[[], Normalizer]] = {
    "frame P2-P98": lambda: FrameNormalizer((2.0, 98.0)),
    "ema only (no align)": lambda: StableNormalizer(align=False, expand=0.1, contract=0.1, deadband=0.0),
    "align, no motion, contract 0.1 (old)": lambda: StableNormalizer(motion=False, contract=0.1),
    "align + motion, contract 0.1": lambda: StableNormalizer(contract=0.1),
    "align + motion, no contraction": lambda: StableNormalizer(contract=0.0),
    "stable (default)": lambda: StableNormalizer(),
}


class Oracle:
    """Fixed bounds in the true depth's units, mapped through each frame's true gain and offset."""

    def __init__(self, truth: list[np.ndarray], proxy: list[np.ndarray]) -> None:
        values = np.concatenate([t[::8, ::8].ravel() for t in truth])
        self.lo, self.hi = np.percentile(values, [1.0, 99.0])
        self.affine = [np.polyfit(t[::4, ::4].ravel(), p[::4, ::4].ravel(), 1) for t, p in zip(truth, proxy)]
        self.index = 0

    def bounds(self, depth: np.ndarray) -> tuple[float, float]:
        s, b = self.affine[self.index]
        self.index += 1
        return float(s * self.lo + b), float(s * self.hi + b)

    def reset(self) -> None:
        self.index = 0


def model_depths(frames: list[np.ndarray]) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        estimator = DepthEstimator(weights=save_synthetic_weights(Path(tmp) / "midas_v21_small_256.pt"))
        return [estimator.predict(f) for f in frames]


def measure(
    frames: list[np.ndarray], depths: list[np.ndarray], decoder: ColormapDecoder, oracle: Oracle | None = None
) -> dict[str, float]:
    raw = temporal_consistency(zip(frames, depths))
    print(f"  raw depth (float):                        TC {raw.tc:.4f}  (valid {raw.valid_fraction:.0%})")
    makers = dict(CANDIDATES)
    if oracle is not None:
        makers = {"oracle (true gain/offset, fixed)": lambda: oracle, **makers}
    tcs = {}
    for name, make in makers.items():
        norm = make()
        grays, cost = [], []
        for d in depths:
            t0 = time.perf_counter()
            lo, hi = norm.bounds(d)
            cost.append(time.perf_counter() - t0)
            grays.append(scale_to_uint8(d, lo, hi))
        colour = (decoder.decode(apply_colormap(x, decoder.colormap)) for x in grays)
        c = temporal_consistency(zip(frames, colour))
        tcs[name] = c.tc
        print(
            f"  {name:40s}  TC {c.tc:.4f}  clipped {c.clipped_fraction:6.2%}  "
            f"bounds {1000 * np.median(cost):.2f} ms/frame"
        )
    ratio = tcs["stable (default)"] / max(tcs["frame P2-P98"], 1e-12)
    print(f"  -> stable / frame TC = {ratio:.2f}")
    return tcs


def jitter(depths: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    return [d * rng.uniform(0.85, 1.15) + rng.uniform(-0.3, 0.3) * float(np.std(d)) for d in depths]


def measure_proxy(clip: SceneClip, decoder: ColormapDecoder, noise: float) -> dict[str, float]:
    pairs = list(clip.frames())
    depths = [d for _, d in midas_like(pairs, seed=3, noise=noise)]
    return measure([f for f, _ in pairs], depths, decoder, Oracle([d for _, d in pairs], depths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-model", action="store_true", help="skip conditions A and B")
    parser.add_argument("--proxies-only", action="store_true", help="run only the MiDaS-like proxies E, F, G")
    parser.add_argument("--noise", type=float, default=0.01, help="the proxies' non-affine noise (default 0.01)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.frames
    decoder = ColormapDecoder("inferno")
    rng = np.random.default_rng(7)
    clip = SceneClip(frames_count=n)
    pairs = list(clip.frames())
    frames = [f for f, _ in pairs]
    print(f"clips: {n} frames 640x480, pan {clip.pan_px_per_frame} px/frame, object {clip.object_speed} px/frame")
    if not (args.skip_model or args.proxies_only):
        depths = model_depths(frames)
        print("A: raw model output (synthetic weights)")
        measure(frames, depths, decoder)
        print("B: A x per-frame gain U(0.85,1.15) + offset U(-0.3,0.3)*std")
        measure(frames, jitter(depths, rng), decoder)
    if not args.proxies_only:
        print("C: flat-wall clip's true depth with the same jitter (crude proxy)")
        measure(frames, jitter([d for _, d in pairs], rng), decoder)
        still = list(SceneClip(frames_count=n, object_speed=0.0).frames())
        print("D: as C, camera pan only (no object)")
        measure([f for f, _ in still], jitter([d for _, d in still], rng), decoder)
    print(f"E: MiDaS-like proxy (ramps, gain/offset +-10%, {args.noise:.1%} noise), object walks in and stays")
    measure_proxy(SceneClip(frames_count=n, relief=True), decoder, args.noise)
    print("F: as E, camera pan only (no object)")
    measure_proxy(SceneClip(frames_count=n, relief=True, object_speed=0.0), decoder, args.noise)
    print("G: as E, the object walks in and out (15 frames each way)")
    measure_proxy(SceneClip(frames_count=n, relief=True, object_return=15), decoder, args.noise)


if __name__ == "__main__":
    main()
