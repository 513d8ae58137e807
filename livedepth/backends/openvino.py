"""The openvino backend: OpenVINO on the exported model, pinned to fp32 (faithful); the OpenVINO runner."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from livedepth.backends.export import PerSize


def import_openvino():
    """Import OpenVINO without its usage telemetry.

    ``import openvino`` loads the model converter, which reports usage over the network unless
    the user has opted out; with ``openvino_telemetry`` unimportable it falls back to its own
    no-op stub, so livedepth never sends anything.
    """
    sys.modules.setdefault("openvino_telemetry", None)
    import openvino  # an optional package: livedepth[openvino]

    return openvino


def ov_runner(path: Path, threads: int | None, precision: str = "f32") -> Callable[[np.ndarray], np.ndarray]:
    """An OpenVINO CPU request at the inference ``precision`` (``INFERENCE_PRECISION_HINT``): f32
    stops a silent bf16 on AMX CPUs; bf16 is the bf16 backend's (a CPU without bf16 runs f32).
    Its threads are not pinned to cores: beside capture, colours and encoding on a small machine,
    a pinned thread waits for its core where a free one could run it (a Depth Anything forward at
    252 beside other sessions in one process took 194 ms pinned, 153 ms not).

    Compiled blobs are cached in ``openvino-cache/`` beside the model for a faster start-up.
    """
    ov = import_openvino()
    config: dict[str, object] = {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
        "CACHE_DIR": str(path.parent / "openvino-cache"),
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    request = ov.Core().compile_model(str(path), "CPU", config).create_infer_request()
    return lambda x: request.infer({0: x})[0]


class OpenVinoBackend(PerSize):
    """Faithful fp32 OpenVINO."""

    name = "openvino"
    precision = "f32"

    def _build(self, height: int, width: int) -> Callable[[np.ndarray], np.ndarray]:
        return ov_runner(self.onnx_path(height, width), self.threads, self.precision)
