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
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import inspect
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from livedepth.errors import LivedepthError
from livedepth.settings import BACKEND_NAMES

if TYPE_CHECKING:
    from livedepth.model import MidasSmall

log = logging.getLogger(__name__)

#: Every backend name ``DepthEstimator`` accepts, besides ``"auto"``.
BACKENDS = tuple(name for name in BACKEND_NAMES if name != "auto")
#: Faithful fp32 backends, fastest first (measured with ``livedepth bench``); ``auto`` takes the first installed.
FP32_PREFERENCE = ("onnx", "openvino", "torch")
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


def resolve_name(name: str) -> str:
    """``auto`` -> the fastest installed faithful fp32 backend; other names are checked."""
    if name == "auto":
        return next(b for b in FP32_PREFERENCE if is_available(b))
    if name not in BACKENDS:
        raise LivedepthError(f"unknown backend {name!r} (choose from auto, {', '.join(BACKENDS)})")
    if not is_available(name):
        module, extra = _REQUIRES[name]
        raise LivedepthError(f"backend {name!r} needs {module}: pip install 'livedepth[{extra}]'")
    return name


def artifact_dir(weights_path: Path) -> Path:
    """Where exported models go: next to the weights, else the livedepth cache."""
    from livedepth.weights import cache_dir

    folder = weights_path.parent
    if os.access(folder, os.W_OK):
        return folder
    fallback = cache_dir()
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


class TorchBackend:
    """Faithful fp32 torch: BN folded, channels_last, traced and frozen per input size."""

    name = "torch"

    def __init__(self, model: MidasSmall, threads: int | None = None) -> None:
        from livedepth.model import fold_batchnorm

        self.threads = threads
        fast = fold_batchnorm(copy.deepcopy(model)).eval()
        fast.scratch.refinenet4.resConfUnit1 = None  # never run by the forward; drop its weights
        self.model = fast.to(memory_format=torch.channels_last)
        self.device = next(self.model.parameters()).device
        self._graphs: dict[tuple[int, int], torch.jit.ScriptModule] = {}

    def has_exports(self) -> bool:
        return False

    def prepare(self, height: int, width: int) -> None:
        if (height, width) in self._graphs:
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
            return self._graphs[height, width](x)[0].float().cpu().numpy()


def export_onnx(model: MidasSmall, path: Path, height: int, width: int) -> Path:
    """Export ``model`` for a fixed ``(1, 3, height, width)`` input to ``path`` (atomically).

    The exported graph has BN folded into the convs and the "same" padding fixed.
    """
    from livedepth.model import fold_batchnorm, static_padding

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                static_padding(fold_batchnorm(copy.deepcopy(model).cpu().eval()), height, width),
                (torch.zeros(1, 3, height, width),),
                tmp,
                dynamo=False,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["depth"],
            )
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    log.info("exported %s", path)
    return path


@functools.cache
def graph_version() -> str:
    """A digest of everything that shapes the exported graph: the model code, the export
    code, the opset and the torch version. It is part of every cached file's name, so a
    code change never reuses a stale export."""
    from livedepth import model

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


def ort_session(path: Path, threads: int | None):
    """An ONNX Runtime CPU session with every graph optimisation."""
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
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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

        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        prepared = Path(tmp).with_suffix(".pre.onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(fp32), str(prepared))
                quantize_static(
                    str(prepared),
                    tmp,
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
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
) -> Backend:
    """The backend ``name`` (already resolved, not ``auto``) for the model ``model()`` builds."""
    if name == "torch":
        return TorchBackend(model(), threads)
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
