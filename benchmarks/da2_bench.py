"""Depth Anything V2 Small: ms per eager forward vs ``predict`` (pre + forward + post) per backend.

For each thread count and square input size, one run times, in rotating order per round:
- ``eager``: a plain eager forward of the timm-based network alone (the baseline);
- ``predict/<backend>``: preprocess a 640x480 frame to ``size x size``, run the backend's
  forward, upsample to 640x480 (what ``predict`` does), for the backends asked for:
  ``torch`` (eager), and the real backends ``jit`` (the torch backend: traced and frozen),
  ``onnx`` (ONNX Runtime) and ``openvino``, the last three on the graph exported for that size.

It prints the median and least wall ms, the median CPU ms of the process (robust to a busy
machine: it counts only the time this process ran) and the speed-up of each ``predict`` over
``eager`` on each of the three, and checks each backend's forward against eager
(rel = max|y - e| / max|e|; faithful is <= 1e-4; the golden tests check the official outputs).

    .venv/bin/python benchmarks/da2_bench.py --threads 2,1 --sizes 252,266,308,364,518
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import common  # noqa: F401  (puts tests/ on sys.path)

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from support.golden_da2 import TEST_IMAGE, synthetic_state  # noqa: E402

from livedepth.backends.base import Network  # noqa: E402
from livedepth.backends.create import create_backend  # noqa: E402
from livedepth.model import depth_anything as da  # noqa: E402

Runner = Callable[[np.ndarray], np.ndarray]
FAITHFUL = 1e-4


def forward_runners(network: torch.nn.Module, names: list[str], size: int, threads: int, folder: Path) -> dict[str, Runner]:
    """Each backend's forward for a ``(1, 3, size, size)`` input: eager torch, and the real
    backends (``jit`` is the torch backend: traced and frozen per size) on ``network``."""
    spec = da.SPEC
    loaded = Network(spec.name, lambda: network, "synthetic", folder / spec.weights.filename, spec.graph_source(),
                     spec.runtime_form, spec.export_form)
    runners: dict[str, Runner] = {}

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(x))[0].numpy()

    if "torch" in names:
        runners["torch"] = eager
    for name, backend in (("jit", "torch"), ("onnx", "onnx"), ("openvino", "openvino")):
        if name in names:
            runners[name] = create_backend(backend, loaded, threads=threads)
            runners[name].prepare(size, size)
    return runners


def rel(y: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(y.astype(np.float64) - reference)) / np.max(np.abs(reference)))


def measure(jobs: dict[str, Callable[[], object]], rounds: int) -> dict[str, tuple[float, float, float]]:
    """(median wall ms, least wall ms, median CPU ms) of each job; one untimed warm-up, then
    rounds in rotating order. On a busy machine the least wall time is the closest to a quiet one."""
    for job in jobs.values():
        job()
    names = list(jobs)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        for name in names[i % len(names):] + names[: i % len(names)]:
            t0, c0 = time.perf_counter(), time.process_time()
            jobs[name]()
            wall[name].append((time.perf_counter() - t0) * 1e3)
            cpu[name].append((time.process_time() - c0) * 1e3)
    return {n: (float(np.median(wall[n])), min(wall[n]), float(np.median(cpu[n]))) for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="2,1", help="comma-separated thread counts")
    parser.add_argument("--sizes", default="252,266,308,364,518", help="comma-separated square input sizes")
    parser.add_argument("--backends", default="torch,onnx,openvino", help="also: jit")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    names = args.backends.split(",")
    frame = cv2.imread(str(TEST_IMAGE))
    network = da.build_network()
    da.load_official_state(network, synthetic_state())
    print(f"frame {frame.shape[1]}x{frame.shape[0]}, rounds {args.rounds}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'thr':>3} {'size':>4} {'job':<26} {'wall ms':>8} {'min ms':>8} {'cpu ms':>8} "
          f"{'x wall':>7} {'x min':>6} {'x cpu':>6} {'rel':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            cv2.setNumThreads(threads)
            for size in (int(s) for s in args.sizes.split(",")):
                hw = da.input_size(*frame.shape[:2], size, keep_aspect=False)
                batch = da.preprocess(frame, hw)
                runners = forward_runners(network, names, size, threads, Path(tmp))
                reference = runners.get("torch", next(iter(runners.values())))(batch)
                with torch.inference_mode():
                    jobs: dict[str, Callable[[], object]] = {"eager": lambda: network(torch.from_numpy(batch))}
                    for name, run in runners.items():
                        jobs[f"predict/{name}"] = (
                            lambda run=run: da.postprocess(run(da.preprocess(frame, hw)), frame.shape[:2])
                        )
                    results = measure(jobs, args.rounds)
                base = results["eager"]
                for job, times in results.items():
                    name = job.removeprefix("predict/")
                    error = f"{rel(runners[name](batch), reference):8.1e}" if name in runners else ""
                    wall_ms, min_ms, cpu_ms = times
                    speedups = " ".join(f"{b / t:6.2f}" for b, t in zip(base, times))
                    print(f"{threads:>3} {size:>4} {job:<26} {wall_ms:8.1f} {min_ms:8.1f} {cpu_ms:8.1f} "
                          f"{speedups} {error}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}; faithful: rel <= {FAITHFUL:g}")


if __name__ == "__main__":
    main()
