"""The bf16 backend: OpenVINO at bf16 inference precision on the exported model (opt-in)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from livedepth.backends.base import CalibrationInputs, Network, check_against_fp32
from livedepth.backends.openvino import OpenVinoBackend, ov_runner

#: The bf16 start-up check warns when its relative RMS error against fp32 exceeds this.
BF16_WARN_THRESHOLD = 0.05
#: How many of the frames it is given the start-up check runs.
BF16_CHECK_FRAMES = 2


class Bf16Backend(OpenVinoBackend):
    """OpenVINO with ``INFERENCE_PRECISION_HINT=bf16`` on the exported fp32 model; opt-in, and
    only where the CPU has bf16 arithmetic (``base.cpu_problem``).

    At start-up (per input size) it runs bf16 and fp32 OpenVINO on the first
    ``BF16_CHECK_FRAMES`` of ``frames`` and logs the relative RMS error; above
    ``BF16_WARN_THRESHOLD`` it warns. ``self.check_error`` holds the last value.
    """

    name = "bf16"
    precision = "bf16"
    runtime = "openvino"

    def __init__(self, network: Network, threads: int | None, frames: CalibrationInputs) -> None:
        super().__init__(network, threads)
        self.frames = frames
        self.check_error: float | None = None

    def _build(self, height: int, width: int) -> Callable[[np.ndarray], np.ndarray]:
        run_bf16 = super()._build(height, width)
        run_fp32 = ov_runner(self.onnx_path(height, width), self.threads)
        inputs = [np.ascontiguousarray(x, dtype=np.float32) for x in self.frames(height, width)[:BF16_CHECK_FRAMES]]
        self.check_error = check_against_fp32(
            self.name, self.runtime, run_bf16, run_fp32, inputs, inputs_are="frames",
            warn_above=BF16_WARN_THRESHOLD, advice="use an fp32 backend",
        )
        return run_bf16
