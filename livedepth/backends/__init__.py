"""Inference backends: one network forward, ``(1, 3, h, w)`` float32 in, ``(h, w)`` float32 out.

- ``torch``: the loaded model with BN folded into the convs, channels_last, traced and
  frozen once per input size (fp32, faithful).
- ``onnx``: ONNX Runtime with all graph optimisations on a model exported from the loaded
  weights (fp32, faithful; extra ``livedepth[onnx]``).
- ``openvino``: OpenVINO on the same exported model, pinned to fp32 (extra ``livedepth[openvino]``).
- ``int8``: ONNX Runtime on a statically quantized (QDQ, per-channel) copy calibrated on frames;
  opt-in, not faithful; it checks itself against fp32 at start-up.

Exported and quantized models are cached next to the weights (or in the livedepth cache
when that folder is not writable), keyed by the weights' SHA-256, :func:`graph_version`
and the input size.

``auto`` measures instead of guessing (:func:`choose_auto`): the first time it meets a
combination of installed faithful fp32 backends, input size, threads, CPU model and package
versions, it times each backend for a few forwards (under ``AUTO_BUDGET_S`` in all), keeps the
fastest in ``auto-backend.json`` in the livedepth cache and reuses it afterwards.
``$LIVEDEPTH_BACKEND`` replaces ``auto`` with a backend of the user's choice.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from livedepth.core.errors import LivedepthError
from livedepth.core.files import cache_dir, create_temp, read_cache, write_cache
from livedepth.core.vocab import BACKEND_NAMES

if TYPE_CHECKING:
    from livedepth.model.midas import MidasSmall

log = logging.getLogger(__name__)

#: Every backend name ``DepthEstimator`` accepts, besides ``"auto"``.
BACKENDS = tuple(name for name in BACKEND_NAMES if name != "auto")
#: Faithful fp32 backends, the candidates of ``auto``, in the order that breaks near-ties (the
#: fastest first as measured with ``livedepth bench`` on a desktop CPU).
FP32_PREFERENCE = ("onnx", "openvino", "torch")
#: The environment variable that replaces ``auto`` with a named backend.
ENV_BACKEND = "LIVEDEPTH_BACKEND"
#: ``auto`` times its candidates for at most this long in all (seconds of forwards) ...
AUTO_BUDGET_S = 2.5
#: ... in at most this many timed rounds (after one untimed warm-up round).
AUTO_ROUNDS = 5
#: A candidate earlier in ``FP32_PREFERENCE`` is kept unless another is more than this much
#: faster (median): a few forwards on a busy machine cannot tell closer backends apart.
AUTO_MARGIN = 0.10
#: ``auto`` leaves out a candidate whose output differs from the reference model's by more than
#: this relative RMS (the golden tests' bar): a runtime that computes in lower precision on this
#: CPU (an fp16 default, a broken kernel) is fast but not faithful.
AUTO_FAITHFUL_RMS = 1e-4
#: The file in the livedepth cache that keeps ``auto``'s measured choices.
AUTO_CACHE = "auto-backend"
#: The Python package each backend needs, and the extra that installs it.
_REQUIRES = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino"), "int8": ("onnxruntime", "onnx")}
#: The int8 start-up check warns when its relative RMS error against fp32 exceeds this.
INT8_WARN_THRESHOLD = 0.05
#: ONNX opset of the exported model.
OPSET = 17

CalibrationInputs = Callable[[int, int], Sequence[np.ndarray]]
#: Builds the loaded model on demand (exported backends skip it when their cache is warm).
ModelFactory = Callable[[], "MidasSmall"]


class Backend(Protocol):
    """A network forward on a preprocessed ``(1, 3, h, w)`` float32 batch."""

    name: str

    def prepare(self, height: int, width: int) -> None:
        """Build what an input of this size needs now rather than on the first frame."""

    def has_exports(self) -> bool:
        """Whether a model exported from these weights is cached (so the weights loaded before)."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def is_available(name: str) -> bool:
    """Whether ``name``'s runtime is installed (torch always is)."""
    module = _REQUIRES.get(name, ("torch",))[0]
    return importlib.util.find_spec(module) is not None


def import_openvino():
    """Import OpenVINO without its usage telemetry.

    ``import openvino`` loads the model converter, which reports usage over the network unless
    the user has opted out; with ``openvino_telemetry`` unimportable it falls back to its own
    no-op stub, so livedepth never sends anything.
    """
    sys.modules.setdefault("openvino_telemetry", None)
    import openvino

    return openvino


def requested_backend(name: str) -> tuple[str, str]:
    """``(name, where from)``: ``$LIVEDEPTH_BACKEND`` replaces ``auto``; any other name stands.

    The environment's value is checked here (one line naming the variable when it is unknown).
    """
    value = os.environ.get(ENV_BACKEND, "").strip()
    if name != "auto" or not value:
        return name, ""
    if value != "auto" and value not in BACKENDS:
        raise LivedepthError(f"{ENV_BACKEND}={value}: unknown backend (choose from auto, {', '.join(BACKENDS)})")
    return value, ENV_BACKEND


def auto_candidates() -> list[str]:
    """The installed faithful fp32 backends, in ``FP32_PREFERENCE`` order (int8 is never one)."""
    return [b for b in FP32_PREFERENCE if is_available(b)]


def resolve_name(name: str) -> str:
    """``auto`` -> the first installed faithful fp32 backend by preference, without measuring
    (``DepthEstimator`` measures: :func:`choose_auto`); other names are checked."""
    if name == "auto":
        return auto_candidates()[0]
    if name not in BACKENDS:
        raise LivedepthError(f"unknown backend {name!r} (choose from auto, {', '.join(BACKENDS)})")
    if not is_available(name):
        module, extra = _REQUIRES[name]
        raise LivedepthError(f"backend {name!r} needs {module}: pip install 'livedepth[{extra}]'")
    return name


def artifact_dir(weights_path: Path) -> Path:
    """Where exported models go: next to the weights, else the livedepth cache."""
    folder = weights_path.parent
    if os.access(folder, os.W_OK):
        return folder
    fallback = cache_dir()
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


class TorchBackend:
    """Faithful fp32 torch: BN folded, channels_last, traced and frozen per input size."""

    name = "torch"

    def __init__(self, model: MidasSmall, threads: int | None = None, eager: bool = False) -> None:
        from livedepth.model.midas import fold_batchnorm  # timm is slow to import (phase 2 removes this arrow)

        self.threads = threads
        self.eager = eager  # run the module as it is: nothing built per input size
        fast = fold_batchnorm(copy.deepcopy(model)).eval()
        fast.scratch.refinenet4.resConfUnit1 = None  # never run by the forward; drop its weights
        self.model = fast.to(memory_format=torch.channels_last)
        self.device = next(self.model.parameters()).device
        self._graphs: dict[tuple[int, int], torch.jit.ScriptModule] = {}

    def has_exports(self) -> bool:
        return False

    def prepare(self, height: int, width: int) -> None:
        if self.eager or (height, width) in self._graphs:
            return
        example = torch.zeros(1, 3, height, width, device=self.device).contiguous(memory_format=torch.channels_last)
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(self.model, example, check_trace=False)
            self._graphs[height, width] = torch.jit.freeze(traced)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.threads:
            torch.set_num_threads(self.threads)
        height, width = batch.shape[-2:]
        self.prepare(height, width)
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
            forward = self.model if self.eager else self._graphs[height, width]
            return forward(x)[0].float().cpu().numpy()


def export_onnx(model: MidasSmall, path: Path, height: int, width: int) -> Path:
    """Export ``model`` for a fixed ``(1, 3, height, width)`` input to ``path`` (atomically).

    The exported graph has BN folded into the convs and the "same" padding fixed.
    """
    from livedepth.model.midas import fold_batchnorm, static_padding  # timm is slow to import (phase 2 removes this arrow)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(path)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                static_padding(fold_batchnorm(copy.deepcopy(model).cpu().eval()), height, width),
                (torch.zeros(1, 3, height, width),),
                str(tmp),
                dynamo=False,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["depth"],
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s", path)
    return path


@functools.cache
def graph_version() -> str:
    """A digest of everything that shapes the exported graph: the model code, the export
    code, the opset and the torch version. It is part of every cached file's name, so a
    code change never reuses a stale export."""
    from livedepth.model import midas as model  # timm is slow to import (phase 2 removes this arrow)

    digest = hashlib.sha256()
    for part in (inspect.getsource(model), inspect.getsource(export_onnx), str(OPSET), torch.__version__):
        digest.update(part.encode())
    return digest.hexdigest()[:12]


class _PerSize:
    """Shared plumbing: one exported (cached) fp32 ONNX model per input size."""

    def __init__(self, model: ModelFactory, weights_sha256: str, folder: Path, threads: int | None) -> None:
        self.model = model
        self.folder = folder
        self.threads = threads
        self.stem = f"midas_v21_small_256-{weights_sha256}-g{graph_version()}"
        self._runners: dict[tuple[int, int], Callable[[np.ndarray], np.ndarray]] = {}

    def onnx_path(self, height: int, width: int) -> Path:
        """The cached fp32 ONNX file for this input size (exported on first use)."""
        path = self.folder / f"{self.stem}-{height}x{width}.onnx"
        if not path.is_file():
            export_onnx(self.model(), path, height, width)
        return path

    def has_exports(self) -> bool:
        return any(self.folder.glob(f"{self.stem}-*.onnx"))

    def _build(self, height: int, width: int) -> Callable[[np.ndarray], np.ndarray]:
        raise NotImplementedError

    def prepare(self, height: int, width: int) -> None:
        """Build the runner for this input size now instead of on the first frame."""
        if (height, width) not in self._runners:
            self._runners[height, width] = self._build(height, width)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        height, width = batch.shape[-2:]
        self.prepare(height, width)
        return self._runners[height, width](np.ascontiguousarray(batch, dtype=np.float32))[0]


def ort_session(path: Path | bytes, threads: int | None):
    """An ONNX Runtime CPU session with every graph optimisation (``path``: a file, or a serialized model)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning, like OMP_WAIT_POLICY=PASSIVE for torch:
    # spinning takes the CPU that capture, colorize and encode need on a small machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _ort_runner(session) -> Callable[[np.ndarray], np.ndarray]:
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


class OnnxBackend(_PerSize):
    """Faithful fp32 ONNX Runtime."""

    name = "onnx"

    def _build(self, height: int, width: int) -> Callable[[np.ndarray], np.ndarray]:
        return _ort_runner(ort_session(self.onnx_path(height, width), self.threads))


def _ov_runner(path: Path, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """An OpenVINO CPU request; ``INFERENCE_PRECISION_HINT=f32`` stops a silent bf16 on AMX CPUs.

    Compiled blobs are cached in ``openvino-cache/`` beside the model for a faster start-up.
    """
    ov = import_openvino()
    config: dict[str, object] = {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "CACHE_DIR": str(path.parent / "openvino-cache"),
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    request = ov.Core().compile_model(str(path), "CPU", config).create_infer_request()
    return lambda x: request.infer({0: x})[0]


class OpenVinoBackend(_PerSize):
    """Faithful fp32 OpenVINO."""

    name = "openvino"

    def _build(self, height: int, width: int) -> Callable[[np.ndarray], np.ndarray]:
        return _ov_runner(self.onnx_path(height, width), self.threads)


def _inputs_digest(inputs: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for x in inputs:
        digest.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def relative_rms(y: np.ndarray, reference: np.ndarray) -> float:
    """``||y - ref|| / ||ref||`` in float64."""
    ref = reference.astype(np.float64)
    return float(np.linalg.norm(y.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-30))


class Int8Backend(_PerSize):
    """Static int8 (ONNX Runtime QDQ, per-channel weights) calibrated on frames; opt-in.

    The quantized model runs on OpenVINO when it is installed (VNNI/AMX int8 kernels, about
    twice ONNX Runtime's speed here), else on ONNX Runtime. At start-up (per input size) it
    runs fp32 and int8 on its calibration inputs and logs the relative RMS error; above
    ``INT8_WARN_THRESHOLD`` it warns. ``self.check_error`` holds the last value.
    """

    name = "int8"

    def __init__(
        self,
        model: ModelFactory,
        weights_sha256: str,
        folder: Path,
        threads: int | None,
        calibration: CalibrationInputs,
    ) -> None:
        super().__init__(model, weights_sha256, folder, threads)
        self.calibration = calibration
        self.check_error: float | None = None
        self.runtime = "openvino" if is_available("openvino") else "onnxruntime"

    def _runner(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        if self.runtime == "openvino":
            return _ov_runner(path, self.threads)
        return _ort_runner(ort_session(path, self.threads))

    def _quantize(self, fp32: Path, inputs: Sequence[np.ndarray], dest: Path) -> None:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter(inputs)

            def get_next(self) -> dict[str, np.ndarray] | None:
                x = next(self._it, None)
                return None if x is None else {"input": x}

        from onnxruntime.quantization.shape_inference import quant_pre_process

        fd, tmp = create_temp(dest)
        os.close(fd)
        prepared = tmp.with_suffix(".pre.onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(fp32), str(prepared))
                quantize_static(
                    str(prepared),
                    str(tmp),
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
            prepared.unlink(missing_ok=True)
        log.info("quantized %s", dest)

    def _build(self, height: int, width: int) -> Callable[[np.ndarray], np.ndarray]:
        inputs = [np.ascontiguousarray(x, dtype=np.float32) for x in self.calibration(height, width)]
        if not inputs:
            raise LivedepthError("the int8 backend needs at least one calibration frame")
        fp32 = self.onnx_path(height, width)
        dest = self.folder / f"{self.stem}-{height}x{width}-int8-{_inputs_digest(inputs)}.onnx"
        if not dest.is_file():
            self._quantize(fp32, inputs, dest)
        run_fp32 = self._runner(fp32)
        run_int8 = self._runner(dest)
        self.check_error = max(relative_rms(run_int8(x), run_fp32(x)) for x in inputs)
        log.info(
            "int8 (%s) check: relative RMS error %.4f against fp32 on %d calibration frames",
            self.runtime,
            self.check_error,
            len(inputs),
        )
        if self.check_error > INT8_WARN_THRESHOLD:
            log.warning(
                "int8 relative error %.4f exceeds %.2f: depth may be visibly off; use an fp32 backend "
                "or calibrate on frames like your input",
                self.check_error,
                INT8_WARN_THRESHOLD,
            )
        return run_int8


def create_backend(
    name: str,
    model: ModelFactory,
    *,
    weights_sha256: str,
    weights_path: Path,
    threads: int | None = None,
    calibration: CalibrationInputs | None = None,
    eager: bool = False,
) -> Backend:
    """The backend ``name`` (already resolved, not ``auto``) for the model ``model()`` builds;
    ``eager``: torch without a traced graph per input size."""
    if name == "torch":
        return TorchBackend(model(), threads, eager)
    folder = artifact_dir(weights_path)
    if name == "onnx":
        return OnnxBackend(model, weights_sha256, folder, threads)
    if name == "openvino":
        return OpenVinoBackend(model, weights_sha256, folder, threads)
    if name == "int8":
        if calibration is None:
            raise LivedepthError("the int8 backend needs calibration frames")
        return Int8Backend(model, weights_sha256, folder, threads, calibration)
    raise LivedepthError(f"unknown backend {name!r}")


# --- auto: measure the installed faithful fp32 backends once per machine and setting ---------


def cpu_model() -> str:
    """The CPU's name: ``model name`` on x86; the board model and the cores' part number on
    ARM (``Raspberry Pi 4 Model B Rev 1.4, CPU part 0xd08``); else what ``platform`` knows."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if fields.get("model name"):
        return fields["model name"]
    parts = [fields[k] for k in ("Model", "Hardware") if fields.get(k)]
    if fields.get("CPU part"):
        parts.append(f"CPU implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}")
    return ", ".join(parts) or platform.processor() or platform.machine() or "unknown"


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed versions of the distributions ``names`` (None: not installed), without importing them."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_combination(candidates: Sequence[str], height: int, width: int, threads: int | None) -> dict:
    """What ``auto``'s choice depends on; its digest keys the cache."""
    runtimes = sorted({"torch", *(_REQUIRES.get(name, ("torch",))[0] for name in candidates)})
    return {
        "candidates": list(candidates),
        "versions": package_versions(runtimes),
        "graph": graph_version(),
        "faithful_rms": AUTO_FAITHFUL_RMS,  # a choice made without (or with another) check is not reused
        "input": f"{height}x{width}",
        "threads": threads or available_cores(),
        "cpu": cpu_model(),
        "machine": platform.machine(),
    }


def auto_key(combination: dict) -> str:
    return hashlib.sha256(json.dumps(combination, sort_keys=True).encode()).hexdigest()[:16]


def time_forwards(
    runners: dict[str, Callable[[np.ndarray], object]],
    batch: np.ndarray,
    budget_s: float = AUTO_BUDGET_S,
    rounds: int = AUTO_ROUNDS,
) -> dict[str, list[float]]:
    """Milliseconds per forward of each runner on ``batch``.

    One untimed warm-up round, then up to ``rounds`` timed rounds, each runner once per round
    in a rotating order (so a busy machine slows all alike), while the next round still fits
    in ``budget_s`` (warm-up included). At least one round is timed; if the warm-up round alone
    took over half the budget, its times are the measurement.
    """
    names = list(runners)
    start = time.perf_counter()
    warmup: dict[str, list[float]] = {}
    for name in names:
        t0 = time.perf_counter()
        runners[name](batch)
        warmup[name] = [(time.perf_counter() - t0) * 1e3]
    round_s = time.perf_counter() - start
    if round_s > budget_s / 2:
        return warmup
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        t_round = time.perf_counter()
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            runners[name](batch)
            times[name].append((time.perf_counter() - t0) * 1e3)
        round_s = time.perf_counter() - t_round
        if time.perf_counter() - start + round_s > budget_s:
            break
    return times


def pick_fastest(medians: dict[str, float], order: Sequence[str] = FP32_PREFERENCE) -> str:
    """The first of ``order`` within ``AUTO_MARGIN`` of the fastest median."""
    best = min(medians.values())
    return next(name for name in [*order, *medians] if name in medians and medians[name] <= best * (1 + AUTO_MARGIN))


def _timings_text(timings: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(timings.items(), key=lambda kv: kv[1]))


@dataclass
class AutoChoice:
    """What :func:`choose_auto` picked: the backend, built, and the medians (ms) it was chosen on."""

    name: str
    backend: Backend
    timings_ms: dict[str, float]
    measured: bool  # False: the choice came from the cache (or there was nothing to choose from)


def faithful(built: dict[str, Backend], model: ModelFactory, batch: np.ndarray) -> dict[str, Backend]:
    """The backends of ``built`` whose output on ``batch`` is within ``AUTO_FAITHFUL_RMS`` of the
    reference model's; the others are left out with a warning that gives their error."""
    with torch.inference_mode():
        reference = model().eval()(torch.from_numpy(batch))[0].float().numpy()
    kept = {}
    for name, backend in built.items():
        try:
            error = relative_rms(np.asarray(backend(batch)), reference)
        except Exception as exc:  # noqa: BLE001 - a runtime that does not work here is no candidate
            log.warning("auto: leaving %s out: %s: %s", name, type(exc).__name__, exc)
            continue
        if error > AUTO_FAITHFUL_RMS:
            log.warning("auto: leaving %s out: its output differs from the reference model's by %.2g "
                        "(relative RMS; at most %.0e is faithful)", name, error, AUTO_FAITHFUL_RMS)
            continue
        kept[name] = backend
    return kept


def choose_auto(
    model: ModelFactory,
    *,
    weights_sha256: str,
    weights_path: Path,
    threads: int | None,
    input_hw: tuple[int, int],
) -> AutoChoice:
    """The fastest installed faithful fp32 backend for a ``input_hw`` network input, measured.

    The first time a combination (:func:`auto_combination`) comes up, every candidate is built
    (the onnx and openvino ones on the same exported model, which the winner keeps), prepared
    for ``input_hw``, checked against the reference model (:func:`faithful`) and timed
    (:func:`time_forwards`); the winner (:func:`pick_fastest`) and
    the medians are logged and saved in ``auto-backend.json`` in the livedepth cache. Later
    starts read the choice back and build only the winner. A candidate that fails to build or
    run, or whose output is not faithful, is left out with a warning.
    """

    def build(name: str) -> Backend:
        return create_backend(name, model, weights_sha256=weights_sha256, weights_path=weights_path, threads=threads)

    candidates = auto_candidates()
    if len(candidates) == 1:
        return AutoChoice(candidates[0], build(candidates[0]), {}, False)
    height, width = input_hw
    combination = auto_combination(candidates, height, width, threads)
    key = auto_key(combination)
    entry = read_cache(AUTO_CACHE, key)
    if isinstance(entry, dict) and entry.get("backend") in candidates:
        timings = {k: float(v) for k, v in (entry.get("median_ms") or {}).items()}
        log.info("auto backend: %s, as measured on %s (median ms per forward: %s; %s)", entry["backend"],
                 entry.get("measured_at", "an earlier start"), _timings_text(timings), AUTO_CACHE)
        return AutoChoice(entry["backend"], build(entry["backend"]), timings, False)

    built: dict[str, Backend] = {}
    for name in candidates:
        try:
            backend = build(name)
            backend.prepare(height, width)
            built[name] = backend
        except Exception as exc:  # noqa: BLE001 - a runtime that does not work here is no candidate
            log.warning("auto: leaving %s out: %s: %s", name, type(exc).__name__, exc)
    batch = np.random.default_rng(0).standard_normal((1, 3, height, width)).astype(np.float32)
    built = faithful(built, model, batch)
    if not built:
        raise LivedepthError("no faithful fp32 backend works here (see the warnings above)")
    times = time_forwards(dict(built), batch)
    medians = {name: round(float(np.median(ms)), 2) for name, ms in times.items()}
    winner = pick_fastest(medians, candidates)
    rounds = min(len(ms) for ms in times.values())
    entry = {
        "backend": winner,
        "median_ms": medians,
        "rounds": rounds,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "combination": combination,
    }
    write_cache(AUTO_CACHE, key, entry)
    log.info("auto backend: %s; median ms per forward at %dx%d, %s thread(s), %d round(s): %s", winner, height,
             width, combination["threads"], rounds, _timings_text(medians))
    return AutoChoice(winner, built[winner], medians, True)
