"""Temporal consistency of frame vs stable normalisation on a synthetic clip through the real model.

Runs the synthetic clip from ``tests/synthetic_scene.py`` (textured scene, camera pan, an
object moving in) through ``DepthEstimator`` with the synthetic official-layout weights, then
measures TC and clipped fraction of the raw depth, of the normalised grey depth, and of the
displayed colour output (colormap decoded back to grey levels), for several normalisers.
Conditions: A the raw model output; B the same with MiDaS-like per-frame gain/offset
jitter; C/D the clip's ground-truth depth with that jitter (with / without the object).
Also times each normaliser per 640x480 frame.

    .venv/bin/python benchmarks/temporal_consistency.py [--frames 90]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from golden import expand_synthetic_weights  # noqa: E402
from synthetic_scene import SceneClip  # noqa: E402

from livedepth.colorize import (  # noqa: E402
    FrameNormalizer,
    StableNormalizer,
    apply_colormap,
    scale_to_uint8,
)
from livedepth.estimator import DepthEstimator  # noqa: E402
from livedepth.metrics import ColormapDecoder, temporal_consistency  # noqa: E402

CANDIDATES = {
    "frame P2-P98": lambda: FrameNormalizer((2.0, 98.0)),
    "ema only (no align, a=0.1)": lambda: StableNormalizer(align=False, expand=0.1, contract=0.1, deadband=0.0),
    "align + ema (no deadband)": lambda: StableNormalizer(deadband=0.0),
    "align + ema, expand 0.5/frame": lambda: StableNormalizer(expand=0.5),
    "stable (default)": lambda: StableNormalizer(),
}


def model_depths(frames: list[np.ndarray]) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "midas_v21_small_256.pt"
        torch.save(expand_synthetic_weights(), path)
        estimator = DepthEstimator(weights=path)
        return [estimator.predict(f) for f in frames]


def measure(frames: list[np.ndarray], depths: list[np.ndarray], decoder: ColormapDecoder) -> None:
    raw = temporal_consistency(zip(frames, depths))
    print(f"  raw model depth (float):            TC {raw.tc:.4f}  (valid {raw.valid_fraction:.0%})")
    for name, make in CANDIDATES.items():
        norm = make()
        grays, cost = [], []
        for d in depths:
            t0 = time.perf_counter()
            gray = scale_to_uint8(d, *norm.bounds(d))
            cost.append(time.perf_counter() - t0)
            grays.append(gray)
        g = temporal_consistency(zip(frames, grays))
        colour = (decoder.decode(apply_colormap(x, decoder.colormap)) for x in grays)
        c = temporal_consistency(zip(frames, colour))
        print(
            f"  {name:34s}  grey TC {g.tc:.4f} clipped {g.clipped_fraction:.2%} | colour TC {c.tc:.4f} "
            f"clipped {c.clipped_fraction:.2%} | {1000 * np.median(cost):.2f} ms/frame"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clip = SceneClip(frames_count=args.frames)
    pairs = list(clip.frames())
    frames = [f for f, _ in pairs]
    depths = model_depths(frames)
    decoder = ColormapDecoder("inferno")
    print(f"clip: {len(frames)} frames 640x480, pan {clip.pan_px_per_frame} px/frame, object moving in")
    print("condition A: raw model output (synthetic weights)")
    measure(frames, depths, decoder)
    rng = np.random.default_rng(7)
    jittered = []
    for d in depths:
        spread = float(np.std(d))
        jittered.append(d * rng.uniform(0.85, 1.15) + rng.uniform(-0.3, 0.3) * spread)
    print("condition B: model output x per-frame gain U(0.85,1.15) + offset U(-0.3,0.3)*std (MiDaS-like jitter)")
    measure(frames, jittered, decoder)
    truth = []
    for _, d in pairs:
        truth.append(d * rng.uniform(0.85, 1.15) + rng.uniform(-0.3, 0.3) * float(np.std(d)))
    print("condition C: the clip's ground-truth depth with the same kind of jitter (an ideal, consistent model)")
    measure(frames, truth, decoder)
    still = [(f, d) for f, d in SceneClip(frames_count=args.frames, object_speed=0.0).frames()]
    truth = [d * rng.uniform(0.85, 1.15) + rng.uniform(-0.3, 0.3) * float(np.std(d)) for _, d in still]
    print("condition D: as C, camera pan only (no object entering)")
    measure([f for f, _ in still], truth, decoder)


if __name__ == "__main__":
    main()
