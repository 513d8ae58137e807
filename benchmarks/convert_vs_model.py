"""Conversion frames/s divided by model-only frames/s on a 640x480 clip, same threads, same run.

    .venv/bin/python benchmarks/convert_vs_model.py [--weights PATH] [--backend NAME] [--threads N]
        [--seconds S] [--rounds R]

Model-only: ``DepthEstimator.predict`` in a loop on decoded frames. Conversion: the real
``Converter`` (decode thread, inference stage, encode thread, H.264 + AAC copy) on a clip of
about the same length. Rounds alternate so both see the same machine load. The goal is a
ratio >= 0.85: decode and encode must overlap inference. Without ``--weights`` the synthetic
official-layout weights are used (timing does not depend on weight values). Prints JSON with
the per-stage times (seconds of work per frame, not waiting).
"""

from __future__ import annotations

import json
import os
from fractions import Fraction

from common import benchmark_args, model_only_fps, workspace


def main() -> None:
    args = benchmark_args(__doc__, seconds=10.0, rounds=2)

    from support.clips import make_clip

    from livedepth.render.colorize import Colorizer
    from livedepth.run.convert import Converter
    from livedepth.inference.estimator import DepthEstimator
    from livedepth.io.video import probe, read_frames

    with workspace(args.weights, args.model) as (tmp, weights):
        estimator = DepthEstimator(args.model, weights=weights, size=args.size, threads=args.threads,
                                   backend=args.backend).load()
        probe_clip = tmp / "probe.mp4"
        make_clip(probe_clip, frames=20, width=640, height=480, rate=Fraction(30000, 1001))
        frames = [f.image for f in read_frames(probe_clip)]
        model_only_fps(estimator, frames, 2.0)  # warm-up
        model, conv, results = [], [], []
        for r in range(args.rounds):
            model.append(model_only_fps(estimator, frames, args.seconds))
            clip = tmp / f"clip{r}.mp4"
            make_clip(clip, frames=max(10, round(model[-1] * args.seconds)), width=640, height=480,
                      rate=Fraction(30000, 1001), audio="aac")
            result = Converter(clip, tmp / f"out{r}.mp4", probe(clip), estimator.predict,
                               Colorizer(normalize="stable")).run()
            conv.append(result.frames / result.wall_seconds)
            results.append(result)
    m, c = sum(model) / len(model), sum(conv) / len(conv)
    last = results[-1]
    per_frame = {k: round(v / last.frames * 1000, 1) for k, v in vars(last.times).items()}
    print(json.dumps({
        "backend": getattr(estimator, "backend_name", "torch"),
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "model_fps": round(m, 2),
        "convert_fps": round(c, 2),
        "ratio": round(c / m, 3),
        "rounds": [{"model_fps": round(a, 2), "convert_fps": round(b, 2)} for a, b in zip(model, conv, strict=True)],
        "stage_ms_per_frame": per_frame,
        "frames": last.frames,
    }))


if __name__ == "__main__":
    main()
