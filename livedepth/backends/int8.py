"""The int8 backend: a statically quantized copy of the exported model, calibrated on frames (opt-in)."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from livedepth.backends.base import CalibrationInputs, Network, check_against_fp32, is_available
from livedepth.backends.export import PerSize
from livedepth.backends.openvino import ov_runner
from livedepth.backends.ort import ort_runner, ort_session
from livedepth.core.errors import LivedepthError
from livedepth.core.files import create_temp

log = logging.getLogger(__name__)

#: The int8 start-up check warns when its relative RMS error against fp32 exceeds this.
INT8_WARN_THRESHOLD = 0.05


def _inputs_digest(inputs: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for x in inputs:
        digest.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


class Int8Backend(PerSize):
    """Static int8 (ONNX Runtime QDQ, per-channel weights) calibrated on frames; opt-in.

    The quantized model runs on OpenVINO when it is installed (its int8 kernels are the faster
    here: README, "Speed"), else on ONNX Runtime. At start-up (per input size) it runs fp32 and
    int8 on its calibration inputs and logs the relative RMS error; above
    ``INT8_WARN_THRESHOLD`` it warns. ``self.check_error`` holds the last value.
    """

    name = "int8"

    def __init__(self, network: Network, threads: int | None, calibration: CalibrationInputs) -> None:
        super().__init__(network, threads)
        self.calibration = calibration
        self.check_error: float | None = None
        self.runtime = "openvino" if is_available("openvino") else "onnxruntime"

    def _runner(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        if self.runtime == "openvino":
            return ov_runner(path, self.threads)
        return ort_runner(ort_session(path, self.threads))

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
        self.check_error = check_against_fp32(
            self.name, self.runtime, run_int8, run_fp32, inputs, inputs_are="calibration frames",
            warn_above=INT8_WARN_THRESHOLD, advice="use an fp32 backend or calibrate on frames like your input",
        )
        return run_int8
