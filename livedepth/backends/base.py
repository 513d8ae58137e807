"""What every backend shares: the ``Backend`` protocol, the ``Network`` it runs, and the names."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from torch import nn

from livedepth.backends import system
from livedepth.core.errors import LivedepthError
from livedepth.core.vocab import BACKEND_NAMES

log = logging.getLogger(__name__)

#: Every backend name ``DepthEstimator`` accepts, besides ``"auto"``.
BACKENDS = tuple(name for name in BACKEND_NAMES if name != "auto")
#: The environment variable that replaces ``auto`` with a named backend.
ENV_BACKEND = "LIVEDEPTH_BACKEND"
#: The Python package each backend needs, and the extra that installs it.
REQUIRES = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino"), "int8": ("onnxruntime", "onnx"),
            "bf16": ("openvino", "openvino")}

#: ``(height, width)`` -> preprocessed frames: what int8 is calibrated on and bf16 checks itself on.
CalibrationInputs = Callable[[int, int], Sequence[np.ndarray]]


@dataclass(frozen=True)
class Network:
    """A model's network as a backend gets it: loaded on demand, with its runtime and export forms.

    ``load()`` returns the loaded network (the reference: backends never change it); a warm
    export cache never calls it. ``runtime_form`` (what the torch backend runs) and
    ``export_form`` (what is exported for one input size; None: the runtime form) get a copy of
    it. ``name`` and ``code`` (the model's source) are part of every cached export's name and
    graph version.
    """

    name: str
    load: Callable[[], nn.Module]
    weights_sha256: str
    weights_path: Path
    code: str
    runtime_form: Callable[[nn.Module], nn.Module]
    export_form: Callable[[nn.Module, int, int], nn.Module] | None = None


class Backend(Protocol):
    """A network forward on a preprocessed ``(1, 3, h, w)`` float32 batch."""

    name: str

    def prepare(self, height: int, width: int) -> None:
        """Build what an input of this size needs now rather than on the first frame."""

    def has_exports(self) -> bool:
        """Whether a model exported from these weights is cached (so the weights loaded before)."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def cpu_problem(name: str) -> str | None:
    """Why this CPU cannot run the backend ``name`` (None: it can)."""
    if name == "bf16" and not system.cpu_has_bf16():
        return "this CPU has no bf16 arithmetic (avx512_bf16, amx_bf16 or Arm bf16); use int8 or an fp32 backend"
    return None


def is_available(name: str) -> bool:
    """Whether ``name``'s runtime is installed (torch always is) and this CPU can run it."""
    module = REQUIRES.get(name, ("torch",))[0]
    return importlib.util.find_spec(module) is not None and cpu_problem(name) is None


def check_name(name: str) -> str:
    """``name`` if it is ``auto`` or a backend, else a one-line error listing them."""
    if name != "auto" and name not in BACKENDS:
        raise LivedepthError(f"unknown backend {name!r} (choose from auto, {', '.join(BACKENDS)})")
    return name


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


def require(name: str) -> str:
    """A backend name (not ``auto``), checked: known, runnable on this CPU, and its runtime installed."""
    check_name(name)
    problem = cpu_problem(name)
    if problem:
        raise LivedepthError(f"backend {name!r}: {problem}")
    if not is_available(name):
        module, extra = REQUIRES[name]
        raise LivedepthError(f"backend {name!r} needs {module}: pip install 'livedepth[{extra}]'")
    return name


def relative_rms(y: np.ndarray, reference: np.ndarray) -> float:
    """``||y - ref|| / ||ref||`` in float64."""
    ref = reference.astype(np.float64)
    return float(np.linalg.norm(y.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-30))


def check_against_fp32(
    name: str,
    runtime: str,
    run: Callable[[np.ndarray], np.ndarray],
    run_fp32: Callable[[np.ndarray], np.ndarray],
    inputs: Sequence[np.ndarray],
    *,
    inputs_are: str,
    warn_above: float,
    advice: str,
) -> float:
    """A reduced-precision backend's start-up check: the largest relative RMS error of ``run``
    against ``run_fp32`` on ``inputs`` (described as ``inputs_are``), logged, with a warning
    (and ``advice``) above ``warn_above``."""
    if not inputs:
        raise LivedepthError(f"the {name} backend needs at least one frame to check itself on")
    error = max(relative_rms(run(x), run_fp32(x)) for x in inputs)
    log.info("%s (%s) check: relative RMS error %.4f against fp32 on %d %s", name, runtime, error, len(inputs),
             inputs_are)
    if error > warn_above:
        log.warning("%s relative error %.4f exceeds %.2f: depth may be visibly off; %s", name, error, warn_above,
                    advice)
    return error
