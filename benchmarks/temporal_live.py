"""Live processed FPS with the temporal filter on / off, same run (goal >= 0.95).

    .venv/bin/python benchmarks/temporal_live.py [--model NAME] [--size N] [--weights PATH] [--threads N]
        [--backend NAME] [--seconds S] [--rounds R]

``LivePipeline`` on a 640x480 clip read on demand (as fast as the model goes, no window), in
rounds that alternate off and on (ABBA), each for about ``--seconds``; the filter runs in the
output stage, beside the next forward. Prints one JSON object: the FPS of every round, the
ratio of the means and the median of the per-pair ratios.
"""

from __future__ import annotations

import json

from common import benchmark_args, live_clip, workspace
from live_vs_model import live_fps


def main() -> None:
    args = benchmark_args(__doc__, seconds=15.0, rounds=6)

    from livedepth.inference.estimator import DepthEstimator
    from livedepth.render.temporal import TemporalFilter

    with workspace(args.weights, args.model) as (tmp, weights):
        clip = live_clip(tmp, args.seconds)
        estimator = DepthEstimator(args.model, weights=weights, size=args.size, threads=args.threads,
                                   backend=args.backend).load()
        live_fps(estimator, clip, False, 20)  # warm-up
        fps: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(args.rounds):  # ABBA order, so a drifting machine load hits both alike
            for kind in ("off", "on") if i % 2 == 0 else ("on", "off"):
                frames = max(20, round((fps["off"][-1] if fps["off"] else 15.0) * args.seconds))
                temporal = TemporalFilter() if kind == "on" else None
                fps[kind].append(live_fps(estimator, clip, False, frames, temporal)["fps_processed"])
    ratios = sorted(on / off for on, off in zip(fps["on"], fps["off"]))
    print(json.dumps({
        "model": args.model, "size": args.size, "backend": estimator.backend_name, "threads": args.threads,
        "fps_off": [round(v, 2) for v in fps["off"]], "fps_on": [round(v, 2) for v in fps["on"]],
        "ratio": round(sum(fps["on"]) / sum(fps["off"]), 3),
        "ratio_median_of_rounds": round(ratios[len(ratios) // 2], 3),
    }))


if __name__ == "__main__":
    main()
