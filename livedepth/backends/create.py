"""A backend by name, for a network."""

from __future__ import annotations

from livedepth.backends.base import Backend, CalibrationInputs, Network
from livedepth.backends.bf16 import Bf16Backend
from livedepth.backends.int8 import Int8Backend
from livedepth.backends.openvino import OpenVinoBackend
from livedepth.backends.ort import OnnxBackend
from livedepth.backends.torch import TorchBackend
from livedepth.core.errors import LivedepthError


def create_backend(
    name: str,
    network: Network,
    *,
    threads: int | None = None,
    calibration: CalibrationInputs | None = None,
    eager: bool = False,
) -> Backend:
    """The backend ``name`` (already checked, not ``auto``) for ``network``; ``eager``: torch
    without a traced graph per input size. ``calibration``: the frames int8 is calibrated on
    and bf16 checks itself on."""
    if name == "torch":
        return TorchBackend(network, threads, eager)
    if name == "onnx":
        return OnnxBackend(network, threads)
    if name == "openvino":
        return OpenVinoBackend(network, threads)
    if name == "int8":
        if calibration is None:
            raise LivedepthError("the int8 backend needs calibration frames")
        return Int8Backend(network, threads, calibration)
    if name == "bf16":
        if calibration is None:
            raise LivedepthError("the bf16 backend needs frames to check itself on")
        return Bf16Backend(network, threads, calibration)
    raise LivedepthError(f"unknown backend {name!r}")
