"""``livedepth bench``: livedepth's backends against the reference forward, side by side.

Every timed call is one network forward on a ``(1, 3, h, w)`` input. In each repetition the
reference, every backend and a large SGEMM run once each, in a rotating order, so machine
noise hits all rows alike; medians and ratios from one run are comparable even on a busy
machine. GFLOP/s counts the convolutions each row's graph really runs (the reference's
upsample-then-1x1 fusion order costs 9.19 GFLOP at 256x256, livedepth's graph 8.94); int8
rows use the same fp32 count (useful work, not int8 ops). ``pct_peak`` is relative to the
SGEMM rate measured at the same thread count in the same run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from livedepth import backends
from livedepth.errors import LivedepthError
from livedepth.model import MidasSmall, build_model, count_flops

log = logging.getLogger(__name__)

#: Side of the square SGEMM that measures the machine's fp32 peak.
SGEMM_N = 2048
#: Frame size (h, w) used for start-up and end-to-end runs.
FRAME_HW = (480, 640)


@dataclass
class Row:
    """One backend at one thread count and input size."""

    backend: str
    threads: int
    size: str
    median_ms: float
    p90_ms: float
    gflops: float
    pct_peak: float
    peak_gflops: float
    speedup: float
    startup_s: float | None = None


def parse_size(text: str) -> tuple[int, int]:
    """``"256"`` -> (256, 256); ``"192x256"`` -> (192, 256) (height x width, multiples of 32)."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        raise LivedepthError(f"--size must be N or HxW, got {text!r}") from None
    h, w = (parts[0], parts[0]) if len(parts) == 1 else parts if len(parts) == 2 else (0, 0)
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise LivedepthError(f"--size must be N or HxW with multiples of 32, got {text!r}")
    return h, w


def reference_model(model: MidasSmall) -> MidasSmall:
    """The official-order forward (upsample before each fusion 1x1 conv) with ``model``'s weights."""
    ref = build_model(reference=True)
    ref.load_state_dict(model.state_dict())
    return ref


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def interleave(runners: dict[str, Callable[[], object]], warmup: int, reps: int) -> dict[str, list[float]]:
    """Run each callable ``warmup`` then ``reps`` times, rotating the order each round; ms per call."""
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(warmup + reps):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            ms = _timed(runners[name])
            if i >= warmup:
                times[name].append(ms)
    return times


def _sgemm() -> Callable[[], object]:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(SGEMM_N, SGEMM_N, generator=gen)
    b = torch.randn(SGEMM_N, SGEMM_N, generator=gen)
    return lambda: torch.mm(a, b)


def _torch_runner(model: torch.nn.Module, x: torch.Tensor, threads: int) -> Callable[[], object]:
    def run() -> object:
        torch.set_num_threads(threads)
        with torch.no_grad():
            return model(x)

    return run


def _backend_runner(backend: backends.Backend, x: np.ndarray, threads: int) -> Callable[[], object]:
    def run() -> object:
        torch.set_num_threads(threads)
        return backend(x)

    return run


def measure_startup(weights: Path, backend: str, size: int, threads: int) -> float:
    """Seconds from starting a fresh Python process to its first depth frame (caches warm)."""
    code = (  # not through livedepth.bench, whose imports the estimator itself may not need
        "import sys, time, json; from livedepth.estimator import DepthEstimator, synthetic_frames; "
        "e = DepthEstimator(weights=sys.argv[1], backend=sys.argv[2], size=int(sys.argv[3]), "
        "threads=int(sys.argv[4])); "
        "e.predict(synthetic_frames(1)[0]); print(json.dumps({'startup_s': time.time() - float(sys.argv[5])}))"
    )
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code, str(weights), backend, str(size), str(threads), repr(started)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise LivedepthError(f"start-up probe for {backend} failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["startup_s"])


def run_bench(
    weights: str | Path | None = None,
    *,
    sizes: Sequence[tuple[int, int]] = ((256, 256),),
    threads: Sequence[int] = (1, 2),
    backend_names: Sequence[str] | None = None,
    warmup: int = 3,
    reps: int = 20,
    startup: bool = True,
    weights_config: dict | None = None,
) -> dict:
    """Benchmark the reference forward and every requested backend; the JSON-able report."""
    from livedepth.estimator import DepthEstimator

    names = list(backend_names) if backend_names else [b for b in backends.BACKENDS if backends.is_available(b)]
    for name in names:
        backends.resolve_name(name)
    rows: list[Row] = []
    peaks: dict[int, float] = {}
    weights_path: Path | None = None
    for t in threads:
        torch.set_num_threads(t)
        # keep_aspect: nothing is built for 256x256 up front; each size is prepared below.
        estimators = {
            name: DepthEstimator(weights, threads=t, keep_aspect=True, backend=name, weights_config=weights_config)
            for name in names
        }
        first = next(iter(estimators.values()), None) or DepthEstimator(
            weights, threads=t, keep_aspect=True, backend="torch", weights_config=weights_config
        )
        weights_path = first.weights_path
        reference = reference_model(first.model)
        for h, w in sizes:
            x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
            runners: dict[str, Callable[[], object]] = {"reference": _torch_runner(reference, torch.from_numpy(x), t)}
            for name, est in estimators.items():
                est.backend.prepare(h, w)
                runners[name] = _backend_runner(est.backend, x, t)
            runners["sgemm"] = _sgemm()
            log.info("timing %s at %dx%d, %d thread(s): %d+%d rounds", ", ".join(runners), h, w, t, warmup, reps)
            times = interleave(runners, warmup, reps)
            peak = 2 * SGEMM_N**3 / np.median(times.pop("sgemm")) / 1e6
            peaks[t] = round(peak, 1)
            flops = {"reference": count_flops(reference, h, w)}
            flops_fast = count_flops(first.model, h, w)
            ref_ms = float(np.median(times["reference"]))
            for name, ms in times.items():
                median = float(np.median(ms))
                gflops = flops.get(name, flops_fast) / median / 1e6
                rows.append(
                    Row(
                        backend=name,
                        threads=t,
                        size=f"{h}x{w}",
                        median_ms=round(median, 2),
                        p90_ms=round(float(np.percentile(ms, 90)), 2),
                        gflops=round(gflops, 1),
                        pct_peak=round(100 * gflops / peak, 1),
                        peak_gflops=round(peak, 1),
                        speedup=round(ref_ms / median, 2),
                    )
                )
        del estimators
    if startup and weights_path is not None:
        for row in rows:
            h, w = parse_size(row.size)
            if row.backend != "reference" and h == w:
                row.startup_s = round(measure_startup(weights_path, row.backend, h, row.threads), 2)
    return {
        "results": [asdict(row) for row in rows],
        "peak_gflops": max(peaks.values()) if peaks else None,
        "peak_gflops_by_threads": {str(t): p for t, p in peaks.items()},
        "sgemm_n": SGEMM_N,
        "warmup": warmup,
        "reps": reps,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }


def format_table(report: dict) -> str:
    """The report's rows as a fixed-width text table."""
    head = (
        f"{'backend':<10} {'threads':>7} {'size':>8} {'median ms':>10} {'p90 ms':>8} {'GFLOP/s':>8} "
        f"{'% peak':>7} {'x ref':>6} {'start s':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        start = "" if r["startup_s"] is None else f"{r['startup_s']:.2f}"
        lines.append(
            f"{r['backend']:<10} {r['threads']:>7} {r['size']:>8} {r['median_ms']:>10.1f} {r['p90_ms']:>8.1f} "
            f"{r['gflops']:>8.1f} {r['pct_peak']:>7.1f} {r['speedup']:>6.2f} {start:>8}"
        )
    peaks = ", ".join(f"{t} thread(s) {p:.0f}" for t, p in report["peak_gflops_by_threads"].items())
    lines.append(f"fp32 SGEMM peak ({report['sgemm_n']}^3, GFLOP/s): {peaks}")
    if report.get("end_to_end"):
        e2e = report["end_to_end"]
        lines.append(
            f"end to end ({e2e['frames']} frames {e2e['frame']}, {e2e['threads']} thread(s)): seeds' loop "
            f"{e2e['seeds_fps']:.1f} fps, live pipeline ({e2e['backend']}) {e2e['live_fps']:.1f} fps, "
            f"x{e2e['ratio']:.2f}"
        )
    return "\n".join(lines)


# --- end to end: the seeds' sequential loop against the live pipeline ---------------------------


def write_test_video(path: Path, frames: int, fps: float = 30.0) -> Path:
    """A synthetic 640x480 mp4 (moving smooth texture) for end-to-end runs."""
    from livedepth.estimator import synthetic_frames

    base = synthetic_frames(2, *FRAME_HW)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (FRAME_HW[1], FRAME_HW[0]))
    try:
        for i in range(frames):
            writer.write(np.roll(base[i % 2], 4 * i, axis=1))
    finally:
        writer.release()
    return path


def seeds_loop(video: Path, reference: MidasSmall, size: int = 256, max_frames: int | None = None) -> float:
    """The seeds' way, sequentially: read, float64 square resize, eager forward, bicubic upsample,
    per-frame min/max, colormap. Returns frames per second."""
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    cap = cv2.VideoCapture(str(video))
    count = 0
    start = time.perf_counter()
    try:
        while max_frames is None or count < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) / 255.0
            x = (cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC) - mean) / std
            batch = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))
            with torch.no_grad():
                depth = reference(batch).unsqueeze(1)
                depth = F.interpolate(depth, size=frame.shape[:2], mode="bicubic", align_corners=False)[0, 0].numpy()
            lo, hi = depth.min(), depth.max()
            gray = (255 * (depth - lo) / max(hi - lo, 1e-8)).astype(np.uint8)
            cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO)
            count += 1
    finally:
        cap.release()
    return count / (time.perf_counter() - start)


def live_loop(video: Path, estimator, max_frames: int) -> float:
    """livedepth's live pipeline on the same file with no window or sinks; processed fps."""
    from livedepth.colorize import Colorizer
    from livedepth.pipeline import LivePipeline
    from livedepth.sources import FileSource

    pipeline = LivePipeline(
        FileSource(video), estimator, Colorizer(normalize="stable"), max_frames=max_frames
    )
    pipeline.run()
    return float(pipeline.stats.snapshot()["fps_processed"])


def end_to_end(
    weights: str | Path | None, backend: str, threads: int, frames: int, weights_config: dict | None = None
) -> dict:
    """Seeds' loop vs the live pipeline on one synthetic 640x480 video, interleaved twice."""
    from livedepth.estimator import DepthEstimator

    torch.set_num_threads(threads)
    estimator = DepthEstimator(weights, threads=threads, backend=backend, weights_config=weights_config)
    reference = reference_model(estimator.model)
    with tempfile.TemporaryDirectory() as tmp:
        video = write_test_video(Path(tmp) / "bench.mp4", frames)
        seeds, live = [], []
        for _ in range(2):
            seeds.append(seeds_loop(video, reference))
            live.append(live_loop(video, estimator, frames))
    seeds_fps, live_fps = max(seeds), max(live)
    return {
        "frames": frames,
        "frame": f"{FRAME_HW[1]}x{FRAME_HW[0]}",
        "threads": threads,
        "backend": estimator.backend_name,
        "seeds_fps": round(seeds_fps, 2),
        "live_fps": round(live_fps, 2),
        "ratio": round(live_fps / seeds_fps, 2),
    }

