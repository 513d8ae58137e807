"""The model registry: every depth model livedepth can run, by name.

A model is one module (``livedepth/model/midas.py``, ...) that defines its network and a
``SPEC = ModelSpec(...)`` (or a ``spec_fields()`` giving ``ModelSpec``'s keyword arguments).
The built-in ones are imported the first time they are asked for, so this module stays light
(no torch), and settings can check a model's name without loading any model code. Other code
may :func:`register` more (a test's toy network, a plug-in).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from livedepth.core.errors import LivedepthError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

#: The model every command runs unless told otherwise.
DEFAULT_MODEL = "midas-small"
#: Built-in model name -> the module that defines its ``SPEC`` (imported on first use).
BUILTIN = {"midas-small": "livedepth.model.midas", "depth-anything-v2-small": "livedepth.model.depth_anything"}


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's official checkpoint comes from."""

    filename: str  # the file's name in the cache: "midas_v21_small_256.pt"
    url: str  # the official download URL
    sha256: str | None  # the official SHA-256 (None if unknown); checks downloaded and cached files
    size_bytes: int | None = None


def _as_built(network: nn.Module) -> nn.Module:
    return network


@dataclass(frozen=True)
class ModelSpec:
    """One depth model: its network, its weights, its input sizes and its pre/post-processing."""

    name: str  # "midas-small"
    build_network: Callable[[], nn.Module]  # random init, eval(), fp32, CPU; cheap, no I/O.
    # forward: normalised (1, 3, h, w) float32 -> (1, h, w) depth
    weights: WeightsSource
    size_multiple: int  # each side of the network input is a multiple of this
    default_size: int  # the `--size` default for this model
    size_rule: str  # one line for `livedepth models`, errors and the README
    input_size: Callable[[int, int, int, bool], tuple[int, int]]
    # (frame_h, frame_w, size, keep_aspect) -> network input (h, w)
    preprocess: Callable[[np.ndarray, tuple[int, int]], np.ndarray]
    # (BGR uint8 HxWx3, (h, w)) -> normalised float32 (1, 3, h, w), exactly as the official code
    postprocess: Callable[[np.ndarray, tuple[int, int]], np.ndarray]
    # (network output float32 (h, w), frame (H, W)) -> float32 HxW depth at the frame size
    adapt_state_dict: Callable[[dict], dict]  # official checkpoint -> this network's keys; the load after is strict
    parameters: str  # "21M"
    license: str  # "MIT"
    description: str = ""
    max_size: int = 2048  # the largest `--size`
    runtime_form: Callable[[nn.Module], nn.Module] = _as_built
    # a copy of the loaded network -> the form the torch backend runs, for every input size (it
    # may change the copy in place); e.g. BN folded into the convs
    export_form: Callable[[nn.Module, int, int], nn.Module] | None = None
    # (a copy of the loaded network, h, w) -> the module exported to ONNX for that input size;
    # None: the runtime form
    build_reference: Callable[[], nn.Module] | None = None
    # the official-order network `livedepth bench` times against (same state dict); None: build_network

    def size_problem(self, size: int) -> str | None:
        """What is wrong with ``size`` for this model (for a one-line error), or None."""
        m = self.size_multiple
        if size % m == 0 and m <= size <= self.max_size:
            return None
        return f"must be a multiple of {m} from {m} to {self.max_size} for {self.name}"

    def check_size(self, size: int) -> None:
        """A one-line error unless ``size`` fits this model."""
        problem = self.size_problem(size)
        if problem:
            raise LivedepthError(f"size {size}: {problem}")

    def graph_source(self) -> str:
        """The source of the modules that define the network and its runtime and export forms:
        part of the exported graphs' version, so a change of the model's code never reuses an export."""
        names = []
        for fn in (self.build_network, self.runtime_form, self.export_form):
            module = getattr(fn, "__module__", None)
            if fn is not None and module and module not in names:
                names.append(module)
        return "\n".join(inspect.getsource(sys.modules[name]) for name in names)


_lock = threading.Lock()
_registered: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry (a second registration of a name replaces the first)."""
    with _lock:
        _registered[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a registered model (a built-in one comes back from its module when next asked for)."""
    with _lock:
        _registered.pop(name, None)


def model_names() -> tuple[str, ...]:
    """Every model name: the built-in ones, then the registered ones (nothing is imported)."""
    with _lock:
        return tuple(dict.fromkeys([*BUILTIN, *_registered]))


def _builtin(name: str) -> ModelSpec:
    module = importlib.import_module(BUILTIN[name])
    spec = getattr(module, "SPEC", None)
    return spec if spec is not None else ModelSpec(**module.spec_fields())


def get(name: str) -> ModelSpec:
    """The model ``name``; an unknown name is a one-line error listing the valid ones."""
    with _lock:
        spec = _registered.get(name)
    if spec is not None:
        return spec
    if name not in BUILTIN:
        raise LivedepthError(f"unknown model {name!r} (choose from {', '.join(model_names())})")
    spec = _builtin(name)  # outside the lock: importing a model's module takes seconds (torch, timm)
    with _lock:
        return _registered.setdefault(name, spec)


def specs() -> list[ModelSpec]:
    """Every model's spec, in :func:`model_names` order (imports the built-in models)."""
    return [get(name) for name in model_names()]
