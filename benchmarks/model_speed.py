"""ms per ``predict`` (a 640x480 frame, pre- and postprocessing included) per model, size and backend.

Each model runs through the real estimator and backends on its synthetic weights (timings do not
depend on the values); the median of ``--rounds`` after two warm-up frames.

    .venv/bin/python benchmarks/model_speed.py --backends onnx,torch,openvino --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from common import synthetic_weights

import cv2  # noqa: E402
from support.golden_da2 import TEST_IMAGE  # noqa: E402

from livedepth.inference.estimator import DepthEstimator  # noqa: E402

#: (model, --size) pairs timed by default.
CASES = "midas-small:256,depth-anything-v2-small:252,depth-anything-v2-small:518"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="onnx,torch,openvino")
    parser.add_argument("--cases", default=CASES, help="comma-separated MODEL:SIZE")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    frame = cv2.imread(str(TEST_IMAGE))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        weights = {model: synthetic_weights(folder, model) for model in ("midas-small", "depth-anything-v2-small")}
        print(f"load average {os.getloadavg()[0]:.1f}, {args.threads} threads, 640x480 frames")
        for backend in args.backends.split(","):
            for case in args.cases.split(","):
                model, size = case.split(":")
                estimator = DepthEstimator(model, weights=weights[model], size=int(size), backend=backend,
                                           threads=args.threads).load()
                estimator.predict(frame)
                estimator.predict(frame)
                times = []
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    estimator.predict(frame)
                    times.append((time.perf_counter() - start) * 1e3)
                print(f"{backend:<9} {model:<24} {size:>4} {statistics.median(times):8.0f} ms", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
