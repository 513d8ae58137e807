"""How long ``auto``'s measurement takes against its budget (the wall-clock bound the tests leave out).

    .venv/bin/python benchmarks/auto_budget.py [--weights PATH] [--threads N] [--model NAME] [--size N]

1. ``time_forwards`` on two runners that sleep 0.3 s, with a 1 s budget: the wall time must stay
   under the budget (the warm-up round alone then is the measurement).
2. A first ``auto`` choice for the model in an empty livedepth cache (every installed fp32
   backend built, exported, checked and timed): the seconds spent timing forwards, against
   ``AUTO_BUDGET_S``, and the whole choice (exports and builds included).

Without ``--weights``, the synthetic official-layout MiDaS weights from ``tests/fixtures`` are
used. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from common import benchmark_args, workspace


def main() -> None:
    args = benchmark_args(__doc__, seconds=0.0, rounds=1)

    from livedepth.backends import auto
    from livedepth.inference.estimator import DepthEstimator

    batch = np.zeros((1, 3, 32, 32), np.float32)
    start = time.perf_counter()
    auto.time_forwards({"a": lambda x: time.sleep(0.3), "b": lambda x: time.sleep(0.3)}, batch, budget_s=1.0)
    slow_s = time.perf_counter() - start

    spent: list[float] = []
    real = auto.time_forwards

    def timed(*a, **kw):
        t0 = time.perf_counter()
        try:
            return real(*a, **kw)
        finally:
            spent.append(time.perf_counter() - t0)

    auto.time_forwards = timed
    with workspace(args.weights, args.model) as (tmp, weights):
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")  # an empty cache: auto measures
        os.environ.pop("LIVEDEPTH_BACKEND", None)
        t0 = time.perf_counter()
        estimator = DepthEstimator(args.model, weights=weights, size=args.size, threads=args.threads).load()
        load_s = time.perf_counter() - t0
    print(json.dumps({
        "sleeping_runners": {"budget_s": 1.0, "wall_s": round(slow_s, 3), "within_budget": slow_s < 1.0},
        "first_auto_choice": {
            "model": args.model, "threads": args.threads, "backend": estimator.backend_name,
            "candidates": auto.auto_candidates(), "budget_s": auto.AUTO_BUDGET_S,
            "timing_s": round(sum(spent), 3), "within_budget": sum(spent) <= auto.AUTO_BUDGET_S * 1.1,
            "load_s_with_exports": round(load_s, 2),
        },
    }, indent=2))


if __name__ == "__main__":
    main()
