"""``livedepth bench``: livedepth's backends against the reference forward, side by side.

Every timed call is one network forward on a ``(1, 3, h, w)`` input. In each repetition the
reference, every backend and a 2048^3 fp32 GEMM of every available implementation (torch,
NumPy's BLAS, ONNX Runtime's MatMul, OpenVINO's MatMul) run once each, in a rotating order,
so machine noise hits all rows alike; medians and ratios from one run are comparable even on
a busy machine. GFLOP/s counts the work each row's network really runs (convolutions and
matrix products, :func:`count_flops`; the README gives MiDaS's per size); int8 and bf16 rows
use the same fp32 count (useful work, not int8 or bf16 ops). The fp32 peak at a
thread count is the fastest GEMM implementation's median rate there (``peak_source`` names
it: one library's GEMM can be half another's on the same CPU), and ``pct_peak`` of every
fp32 row is relative to it; int8 and bf16 rows have none. The report also records the machine
(:func:`system_info`), so figures from another machine (a Raspberry Pi) can be compared.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from livedepth.backends.base import BACKENDS, Backend, is_available, require
from livedepth.backends.export import OPSET
from livedepth.backends.openvino import import_openvino
from livedepth.backends.ort import ort_session
from livedepth.backends.system import available_cores, cpu_flags, cpu_model, package_versions
from livedepth.core.errors import LivedepthError
from livedepth.core.predictor import Predictor
from livedepth.inference.estimator import DepthEstimator, synthetic_frames
from livedepth.io.sources import FileSource
from livedepth.model.registry import DEFAULT_MODEL, ModelSpec
from livedepth.render.colorize import Colorizer
from livedepth.run.pipeline import LivePipeline

log = logging.getLogger(__name__)

#: Side of the square fp32 GEMM that measures the machine's fp32 peak.
SGEMM_N = 2048
#: The GEMM implementations tried for the peak, in the order they are reported.
GEMM_IMPLEMENTATIONS = ("torch", "numpy", "onnxruntime", "openvino")
#: What the report lists as the software behind the figures.
REPORTED_PACKAGES = ("livedepth", "torch", "torchvision", "timm", "numpy", "onnxruntime", "onnx", "openvino",
                     "opencv-python", "opencv-python-headless", "av")
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
    pct_peak: float | None  # None for int8 and bf16 (not fp32 work)
    peak_gflops: float
    speedup: float
    startup_s: float | None = None
    peak_source: str = ""  # the GEMM implementation that set peak_gflops


def parse_size(text: str, multiple: int = 32) -> tuple[int, int]:
    """``"256"`` -> (256, 256); ``"192x256"`` -> (192, 256) (height x width, multiples of ``multiple``)."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        raise LivedepthError(f"--size must be N or HxW, got {text!r}") from None
    h, w = (parts[0], parts[0]) if len(parts) == 1 else parts if len(parts) == 2 else (0, 0)
    if h <= 0 or w <= 0 or h % multiple or w % multiple:
        raise LivedepthError(f"--size must be N or HxW with multiples of {multiple}, got {text!r}")
    return h, w


def reference_network(spec: ModelSpec, network: nn.Module) -> nn.Module:
    """The model's reference forward (its official order: ``build_reference``, else the network as
    built) with ``network``'s weights, in eval mode."""
    ref = (spec.build_reference or spec.build_network)()
    ref.load_state_dict(network.state_dict())
    return ref.eval()


def count_flops(network: nn.Module, height: int, width: int) -> int:
    """Floating-point operations (2 per multiply-add) one forward on a ``height x width`` input runs:
    convolutions and matrix products, as torch's flop counter counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        network(torch.zeros(1, 3, height, width))
    return int(counter.get_total_flops())


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


# --- the fp32 peak: the best of several GEMM implementations ----------------------------------


def _blas_thread_setters() -> list[Callable[[int], object]]:
    """``openblas_set_num_threads`` of every OpenBLAS loaded in this process (NumPy's among them).

    NumPy wheels bundle OpenBLAS under a prefixed, 64-bit-integer name
    (``scipy_openblas_set_num_threads64_``); Debian's numpy uses the system OpenBLAS.
    """
    import numpy  # noqa: F401 - loads its BLAS

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return []
    setters = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_", ""):
            for suffix in ("64_", ""):
                fn = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if fn is not None:
                    fn.restype = None
                    setters.append(fn)
    return setters


def _numpy_gemm(a: np.ndarray, b: np.ndarray, threads: int) -> Callable[[], object]:
    setters = _blas_thread_setters()
    if not setters and threads != available_cores():
        raise RuntimeError("cannot set the thread count of NumPy's BLAS (not OpenBLAS)")

    def run() -> object:
        for set_threads in setters:
            set_threads(threads)
        return a @ b

    return run


def _torch_gemm(a: np.ndarray, b: np.ndarray, threads: int) -> Callable[[], object]:
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)

    def run() -> object:
        torch.set_num_threads(threads)
        return torch.mm(ta, tb)

    return run


def _ort_gemm(a: np.ndarray, b: np.ndarray, threads: int) -> Callable[[], object]:
    """ONNX Runtime's MatMul, in a session set up like the onnx backend's (no spinning, which
    would also steal CPU from the rows timed after it)."""
    if not is_available("onnx"):
        raise RuntimeError("onnxruntime is not installed")
    from onnx import TensorProto, helper

    n = a.shape[0]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # what ONNX Runtime 1.17 on (the oldest livedepth allows) reads
    session = ort_session(model.SerializeToString(), threads)
    return lambda: session.run(None, {"a": a, "b": b})[0]


def _openvino_gemm(a: np.ndarray, b: np.ndarray, threads: int) -> Callable[[], object]:
    """OpenVINO's MatMul, pinned to fp32 like the openvino backend."""
    if not is_available("openvino"):
        raise RuntimeError("openvino is not installed")
    ov = import_openvino()
    try:
        from openvino import opset13 as ops
    except ImportError:  # OpenVINO 2024
        from openvino.runtime import opset13 as ops
    n = a.shape[0]
    pa, pb = ops.parameter([n, n], np.float32, name="a"), ops.parameter([n, n], np.float32, name="b")
    model = ov.Model([ops.matmul(pa, pb, False, False)], [pa, pb], "gemm")
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    return lambda: request.infer({0: a, 1: b})[0]


_GEMM_BUILDERS = {"torch": _torch_gemm, "numpy": _numpy_gemm, "onnxruntime": _ort_gemm, "openvino": _openvino_gemm}


def gemm_runners(threads: int, n: int = SGEMM_N) -> tuple[dict[str, Callable[[], object]], dict[str, str]]:
    """``({implementation: one n^3 fp32 GEMM at threads}, {implementation: why it is left out})``.

    Every implementation multiplies the same matrices and is checked against torch's product
    once, so a wrong (or lazy) GEMM cannot set the peak.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    runners: dict[str, Callable[[], object]] = {}
    skipped: dict[str, str] = {}
    expected = None
    for name in GEMM_IMPLEMENTATIONS:
        try:
            run = _GEMM_BUILDERS[name](a, b, threads)
            product = np.asarray(run())
            if expected is None:
                expected = product
            elif not np.allclose(product, expected, rtol=1e-3, atol=1e-2 * np.sqrt(n)):
                raise RuntimeError("its product differs from torch's")
            runners[name] = run
        except Exception as exc:  # noqa: BLE001 - a missing or broken runtime is reported, not fatal
            skipped[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log.info("GEMM peak: leaving %s out (%s)", name, skipped[name])
    return runners, skipped


def gemm_gflops(ms: Sequence[float], n: int = SGEMM_N) -> float:
    """GFLOP/s of an n^3 GEMM from its times (median, ms)."""
    return 2 * n**3 / float(np.median(ms)) / 1e6


@contextmanager
def _blas_threads_restored() -> Iterator[None]:
    """Leave NumPy's BLAS on all cores after the bench (its default)."""
    try:
        yield
    finally:
        for set_threads in _blas_thread_setters():
            set_threads(available_cores())


# --- what a report from another machine needs -------------------------------------------------


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").replace("\x00", "").strip() or None
    except OSError:
        return None


def _os_name() -> str:
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


#: CPU features that decide which kernels run (x86 vector widths, AMX; ARM dot product, fp16).
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "asimd", "asimddp",
                "fphp", "asimdhp", "i8mm", "bf16", "sve")


def cpu_features() -> list[str]:
    """Which of ``CPU_FEATURES`` the CPU has (``flags`` on x86, ``Features`` on ARM)."""
    have = cpu_flags()
    return [f for f in CPU_FEATURES if f in have]


def system_info() -> dict:
    """The machine and software behind a report: CPU, board, cores, OS, Python, package versions."""
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        blas_name = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except (AttributeError, KeyError, TypeError):
        blas_name = None
    return {
        "cpu_model": cpu_model(),
        "cpu_features": cpu_features(),
        "board": _read("/proc/device-tree/model"),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "available_cores": available_cores(),
        "cpu_max_mhz": int(max_khz) // 1000 if max_khz and max_khz.isdigit() else None,
        "cpu_temp_c": round(int(temp) / 1000, 1) if temp and temp.lstrip("-").isdigit() else None,
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": package_versions(REPORTED_PACKAGES),
        "numpy_blas": blas_name,
        "env": {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                            "LIVEDEPTH_BACKEND") if k in os.environ},
    }


def _torch_runner(model: torch.nn.Module, x: torch.Tensor, threads: int) -> Callable[[], object]:
    def run() -> object:
        torch.set_num_threads(threads)
        with torch.no_grad():
            return model(x)

    return run


def _backend_runner(backend: Backend, x: np.ndarray, threads: int) -> Callable[[], object]:
    def run() -> object:
        torch.set_num_threads(threads)
        return backend(x)

    return run


def measure_startup(weights: Path, backend: str, size: int, threads: int, model: str = DEFAULT_MODEL) -> float:
    """Seconds from starting a fresh Python process to its first depth frame (caches warm)."""
    code = (  # not through livedepth.bench, whose imports the estimator itself may not need
        "import sys, time, json; from livedepth.inference.estimator import DepthEstimator, synthetic_frames; "
        "e = DepthEstimator(sys.argv[6], weights=sys.argv[1], backend=sys.argv[2], size=int(sys.argv[3]), "
        "threads=int(sys.argv[4])).load(); "
        "e.predict(synthetic_frames(1)[0]); print(json.dumps({'startup_s': time.time() - float(sys.argv[5])}))"
    )
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code, str(weights), backend, str(size), str(threads), repr(started), model],
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
    model: str = DEFAULT_MODEL,
    sizes: Sequence[tuple[int, int]] | None = None,
    threads: Sequence[int] = (1, 2),
    backend_names: Sequence[str] | None = None,
    warmup: int = 3,
    reps: int = 20,
    startup: bool = True,
    weights_config: dict | None = None,
    gemm_n: int = SGEMM_N,
) -> dict:
    """Benchmark ``model``'s reference forward and every requested backend; the JSON-able report.

    ``sizes``: network inputs (h, w), default the model's default size, square. ``gemm_n``: the
    side of the GEMMs that give the fp32 peak (smaller only where a big one takes too long, as
    under emulation: a small GEMM understates the peak)."""
    names = list(backend_names) if backend_names else [b for b in BACKENDS if is_available(b)]
    for name in names:
        require(name)
    rows: list[Row] = []
    peaks: dict[int, tuple[float, str]] = {}
    gemm_by_threads: dict[str, dict[str, float | None]] = {}
    gemm_skipped: dict[str, str] = {}
    gflop_by_size: dict[str, dict[str, float]] = {}
    weights_path: Path | None = None
    with _blas_threads_restored():
        for t in threads:
            torch.set_num_threads(t)
            # keep_aspect: nothing is built for the square size up front; each size is prepared below.
            estimators = {
                name: DepthEstimator(model, weights=weights, threads=t, keep_aspect=True, backend=name,
                                     weights_config=weights_config).load()
                for name in names
            }
            first = next(iter(estimators.values()), None) or DepthEstimator(
                model, weights=weights, threads=t, keep_aspect=True, backend="torch", weights_config=weights_config
            ).load()
            spec = first.spec
            sizes = sizes or [(spec.default_size, spec.default_size)]
            weights_path = first.loaded.weights_path
            reference = reference_network(spec, first.network)
            gemms, skipped = gemm_runners(t, gemm_n)
            gemm_skipped.update(skipped)
            for h, w in sizes:
                x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
                runners: dict[str, Callable[[], object]] = {
                    "reference": _torch_runner(reference, torch.from_numpy(x), t)
                }
                for name, est in estimators.items():
                    est.backend.prepare(h, w)
                    runners[name] = _backend_runner(est.backend, x, t)
                runners.update({f"gemm:{name}": run for name, run in gemms.items()})
                log.info("timing %s at %dx%d, %d thread(s): %d+%d rounds", ", ".join(runners), h, w, t, warmup, reps)
                times = interleave(runners, warmup, reps)
                rates = {name: gemm_gflops(times.pop(f"gemm:{name}"), gemm_n) for name in gemms}
                source = max(rates, key=rates.get)
                peak = rates[source]
                if peak > peaks.get(t, (0.0, ""))[0]:
                    peaks[t] = (round(peak, 1), source)
                    gemm_by_threads[str(t)] = {name: round(rates[name], 1) if name in rates else None
                                               for name in GEMM_IMPLEMENTATIONS}
                flops = {"reference": count_flops(reference, h, w)}
                flops_fast = count_flops(first.network, h, w)
                gflop_by_size[f"{h}x{w}"] = {"reference": round(flops["reference"] / 1e9, 3),
                                             "livedepth": round(flops_fast / 1e9, 3)}
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
                            pct_peak=None if name in ("int8", "bf16") else round(100 * gflops / peak, 1),
                            peak_gflops=round(peak, 1),
                            speedup=round(ref_ms / median, 2),
                            peak_source=source,
                        )
                    )
            del estimators
    if startup and weights_path is not None:
        for row in rows:
            h, w = parse_size(row.size)
            if row.backend != "reference" and h == w:
                row.startup_s = round(measure_startup(weights_path, row.backend, h, row.threads, model), 2)
    top = max(peaks.values()) if peaks else None
    return {
        "model": model,
        "results": [asdict(row) for row in rows],
        "peak_gflops": top[0] if top else None,
        "peak_source": top[1] if top else None,
        "peak_gflops_by_threads": {str(t): p for t, (p, _) in peaks.items()},
        "peak_source_by_threads": {str(t): src for t, (_, src) in peaks.items()},
        "gemm_gflops_by_threads": gemm_by_threads,
        "gemm_skipped": gemm_skipped,
        "gflop_by_size": gflop_by_size,
        "sgemm_n": gemm_n,
        "warmup": warmup,
        "reps": reps,
        "system": system_info(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }


def format_table(report: dict) -> str:
    """The report's rows as a fixed-width text table, with the machine and the GEMM peaks."""
    system = report.get("system") or {}
    lines = []
    if system:
        board = f"{system['board']}, " if system.get("board") else ""
        mhz = f" up to {system['cpu_max_mhz']} MHz," if system.get("cpu_max_mhz") else ""
        packages = ", ".join(f"{k} {v}" for k, v in system.get("packages", {}).items() if v and k != "livedepth")
        lines.append(f"machine: {board}{system['cpu_model']} ({system['machine']}, {system['available_cores']} of "
                     f"{system['cores']} cores,{mhz} {system['os']}, Python {system['python']})")
        lines.append(f"software: {packages}")
    sizes = ", ".join(f"{size} {g['livedepth']:.2f} (reference {g['reference']:.2f})"
                      for size, g in report.get("gflop_by_size", {}).items())
    if sizes:
        lines.append(f"GFLOP per forward: {sizes}")
    head = (
        f"{'backend':<10} {'threads':>7} {'size':>8} {'median ms':>10} {'p90 ms':>8} {'GFLOP/s':>8} "
        f"{'% peak':>7} {'x ref':>6} {'start s':>8}"
    )
    lines += [head, "-" * len(head)]
    for r in report["results"]:
        start = "" if r["startup_s"] is None else f"{r['startup_s']:.2f}"
        pct = "" if r["pct_peak"] is None else f"{r['pct_peak']:.1f}"
        lines.append(
            f"{r['backend']:<10} {r['threads']:>7} {r['size']:>8} {r['median_ms']:>10.1f} {r['p90_ms']:>8.1f} "
            f"{r['gflops']:>8.1f} {pct:>7} {r['speedup']:>6.2f} {start:>8}"
        )
    sources = report.get("peak_source_by_threads", {})
    peaks = ", ".join(f"{t} thread(s) {p:.0f} ({sources.get(t, '?')})"
                      for t, p in report["peak_gflops_by_threads"].items())
    lines.append(f"fp32 peak, the fastest {report['sgemm_n']}^3 GEMM (GFLOP/s): {peaks}")
    for t, rates in report.get("gemm_gflops_by_threads", {}).items():
        each = ", ".join(f"{k} {'-' if v is None else f'{v:.0f}'}" for k, v in rates.items())
        lines.append(f"  GEMM at {t} thread(s): {each}")
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
    base = synthetic_frames(2, *FRAME_HW)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (FRAME_HW[1], FRAME_HW[0]))
    try:
        for i in range(frames):
            writer.write(np.roll(base[i % 2], 4 * i, axis=1))
    finally:
        writer.release()
    return path


def seeds_loop(video: Path, reference: nn.Module, size: int = 256, max_frames: int | None = None) -> float:
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


def live_loop(video: Path, estimator: Predictor, max_frames: int) -> float:
    """livedepth's live pipeline on the same file with no window or sinks; processed fps."""
    pipeline = LivePipeline(
        FileSource(video), estimator, Colorizer(normalize="stable"), max_frames=max_frames
    )
    pipeline.run()
    return float(pipeline.stats.snapshot()["fps_processed"])


def end_to_end(
    weights: str | Path | None, backend: str, threads: int, frames: int, weights_config: dict | None = None,
    model: str = DEFAULT_MODEL,
) -> dict:
    """Seeds' loop vs the live pipeline on one synthetic 640x480 video, interleaved twice, at the
    model's default size."""
    torch.set_num_threads(threads)
    estimator = DepthEstimator(model, weights=weights, threads=threads, backend=backend,
                               weights_config=weights_config).load()
    reference = reference_network(estimator.spec, estimator.network)
    with tempfile.TemporaryDirectory() as tmp:
        video = write_test_video(Path(tmp) / "bench.mp4", frames)
        seeds, live = [], []
        for _ in range(2):
            seeds.append(seeds_loop(video, reference, estimator.size))
            live.append(live_loop(video, estimator, frames))
    seeds_fps, live_fps = max(seeds), max(live)
    return {
        "model": model,
        "frames": frames,
        "frame": f"{FRAME_HW[1]}x{FRAME_HW[0]}",
        "threads": threads,
        "backend": estimator.backend_name,
        "seeds_fps": round(seeds_fps, 2),
        "live_fps": round(live_fps, 2),
        "ratio": round(live_fps / seeds_fps, 2),
    }

