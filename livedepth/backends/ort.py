"""The onnx backend: ONNX Runtime on the exported model (faithful fp32)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from livedepth.backends.export import PerSize


def ort_session(path: Path | bytes, threads: int | None):
    """An ONNX Runtime CPU session with every graph optimisation (``path``: a file, or a serialized model)."""
    import onnxruntime as ort  # an optional package: livedepth[onnx]

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


def ort_runner(session) -> Callable[[np.ndarray], np.ndarray]:
    """The session as a function of its one input."""
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


class OnnxBackend(PerSize):
    """Faithful fp32 ONNX Runtime."""

    name = "onnx"

    def _build(self, height: int, width: int) -> Callable[[np.ndarray], np.ndarray]:
        return ort_runner(ort_session(self.onnx_path(height, width), self.threads))
