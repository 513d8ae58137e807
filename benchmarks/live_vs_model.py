"""Live pipeline processed FPS divided by model-only FPS, same threads, same run (goal >= 0.9).

    .venv/bin/python benchmarks/live_vs_model.py [--weights PATH] [--threads N] [--backend NAME]
        [--mode on-demand|realtime] [--seconds S] [--rounds R]

Model-only: ``DepthEstimator.predict`` (preprocess, network, upsample) in a loop on decoded
frames. Live: ``LivePipeline`` on the same clip (capture thread, inference thread, colorizer
on the main thread, no window). Rounds alternate model and live (ABBA) so both see the same
load; the median of the per-round ratios is the robust number on a shared machine.
``OMP_WAIT_POLICY`` defaults to PASSIVE, as in ``livedepth live``; set it in the
environment to compare OpenMP wait policies. Without
``--weights``, the synthetic official-layout weights from ``tests/fixtures`` are used (the
timing does not depend on the weight values). Prints one JSON object.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from common import benchmark_args, live_clip, model_only_fps, workspace


def live_fps(estimator, clip: Path, realtime: bool, max_frames: int, temporal=None, colorizer=None) -> dict:
    """The stats of a ``LivePipeline`` run on ``clip`` (no window) for ``max_frames`` frames (``colorizer``:
    default the stable normalisation and the depth layout)."""
    from livedepth.render.colorize import Colorizer
    from livedepth.run.pipeline import LivePipeline
    from livedepth.io.sources import FileSource

    pipeline = LivePipeline(FileSource(clip, realtime=realtime), estimator, colorizer or Colorizer(normalize="stable"),
                            max_frames=max_frames, temporal=temporal)
    return pipeline.run()


def main() -> None:
    args = benchmark_args(__doc__, seconds=5.0, rounds=6, more=lambda p: p.add_argument(
        "--mode", choices=("on-demand", "realtime"), default="on-demand"))

    import cv2

    from livedepth.inference.estimator import DepthEstimator

    with workspace(args.weights, args.model) as (tmp, weights):
        clip = live_clip(tmp, args.seconds)
        estimator = DepthEstimator(args.model, weights=weights, size=args.size, threads=args.threads,
                                   backend=args.backend).load()
        cap = cv2.VideoCapture(str(clip))
        frames = [cap.read()[1] for _ in range(30)]
        cap.release()
        model_only_fps(estimator, frames, 2.0)  # warm-up
        model, live, stats = [], [], []
        for i in range(args.rounds):  # ABBA order, so a drifting machine load hits both alike
            for what in ("model", "live") if i % 2 == 0 else ("live", "model"):
                if what == "model":
                    model.append(model_only_fps(estimator, frames, args.seconds))
                else:
                    frames_wanted = max(5, round((model[-1] if model else 5.0) * args.seconds))
                    stats.append(live_fps(estimator, clip, args.mode == "realtime", frames_wanted))
                    live.append(stats[-1]["fps_processed"])
    ratios = sorted(lv / m for lv, m in zip(live, model))
    m, lv = sum(model) / len(model), sum(live) / len(live)
    print(json.dumps({
        "backend": estimator.backend_name if hasattr(estimator, "backend_name") else "torch",
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "mode": args.mode,
        "model_fps": round(m, 2),
        "live_fps": round(lv, 2),
        "ratio": round(lv / m, 3),
        "ratio_median_of_rounds": round(ratios[len(ratios) // 2], 3),
        "ratios": [round(r, 3) for r in ratios],
        "inference_ms_p50": round(stats[-1]["inference_ms"]["p50"], 1),
        "latency_ms_p50": round(stats[-1]["latency_ms"]["p50"], 1),
        "latency_ms_p95": round(stats[-1]["latency_ms"]["p95"], 1),
        "frames_dropped": stats[-1]["frames_dropped"],
    }))


if __name__ == "__main__":
    main()
