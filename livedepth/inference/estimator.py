"""Single-frame depth with any registered model: preprocessing, a backend, and the output at the frame's size.

:class:`DepthEstimator` is cheap to build: its constructor checks its arguments and does no I/O.
:meth:`DepthEstimator.load` resolves and verifies the weights, chooses ``auto``'s backend and
builds it; :func:`create_estimator` does both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

from livedepth.backends.auto import choose_auto
from livedepth.backends.base import Backend, Network, check_name, require, requested_backend
from livedepth.backends.create import create_backend
from livedepth.backends.system import available_cores
from livedepth.model.network import as_spec, load_network
from livedepth.model.registry import DEFAULT_MODEL, ModelSpec
from livedepth.model.weights import resolve, verify, weights_spec

log = logging.getLogger(__name__)

#: The frame (h, w) whose network input ``auto`` times backends on with keep-aspect sizing: 4:3,
#: as most cameras (the choice barely depends on the aspect).
MEASURE_FRAME_HW = (480, 640)


def synthetic_frames(count: int = 8, height: int = 480, width: int = 640, seed: int = 0) -> list[np.ndarray]:
    """Deterministic smooth BGR uint8 frames (gradients plus blurred noise) for int8 calibration
    (and bf16's check).

    They exercise the network's whole input range but are not real scenes: pass real frames
    (``DepthEstimator(calibration=...)``) for the best int8 accuracy.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for _ in range(count):
        coarse = rng.uniform(0, 255, size=(rng.integers(3, 12), rng.integers(3, 12), 3)).astype(np.float32)
        field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height)[..., None] * 96
        detail = cv2.GaussianBlur(rng.normal(0, 40, size=(height, width, 3)).astype(np.float32), (0, 0), 1.5)
        frames.append(np.clip(field + ramp + detail - 48, 0, 255).astype(np.uint8))
    return frames


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA, else Apple MPS, else the CPU; a requested device that is absent falls back
    to the CPU with a warning."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (device.startswith("cuda") and not cuda) or (device == "mps" and not mps):
        log.warning("%s requested but not available; using the CPU", device)
        return torch.device("cpu")
    return torch.device(device)


def thread_count(threads: int | None) -> str:
    """``2 threads``, ``1 thread``, or ``all cores`` for None or 0."""
    return f"{threads} thread{'s' if threads != 1 else ''}" if threads else "all cores"


class _ShapeLocks:
    """One lock per network input shape: forwards of different shapes run side by side."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[int, int], threading.Lock] = {}

    def __call__(self, shape: tuple[int, int]) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(shape)
            if lock is None:
                lock = self._locks[shape] = threading.Lock()
            return lock


@dataclass(frozen=True)
class Loaded:
    """What :meth:`DepthEstimator.load` found and built."""

    device: torch.device
    weights_path: Path
    weights_sha256: str
    backend: Backend
    backend_name: str


class DepthEstimator:
    """One model on one BGR frame at a time. Thread-safe.

    ``model`` is a registered model's name (``livedepth models``) or its :class:`ModelSpec`.
    ``predict`` returns float32 HxW inverse relative depth (larger is nearer) at the frame's
    resolution. ``size`` is the model's ``--size`` (None: its default; ``livedepth models`` gives
    each model's rule); ``keep_aspect=True`` selects the model's official keep-aspect sizing,
    otherwise the input is ``size x size``.

    Building one does no I/O and builds nothing; :meth:`load` (idempotent, thread-safe) resolves
    and verifies the weights, chooses the backend and builds it, and :meth:`predict` before it
    raises ``RuntimeError``: the caller decides when the slow, fallible step happens
    (``build_estimator`` and ``create_estimator`` return loaded estimators).

    ``backend`` is ``"auto"`` (the fastest installed faithful fp32 backend, measured on the
    first start with this model and these settings on this machine and cached:
    ``backends.auto.choose_auto``; ``$LIVEDEPTH_BACKEND`` replaces it), ``"torch"``, ``"onnx"``,
    ``"openvino"``, ``"int8"`` (opt-in, quantized; calibrated on ``calibration`` BGR frames,
    synthetic frames by default) or ``"bf16"`` (opt-in, OpenVINO at bf16 where the CPU has bf16
    arithmetic; it checks itself against fp32 on two of those frames). ``eager=True`` (torch
    only) builds nothing per input shape: slower per frame, but a one-off shape (a photo) costs
    one forward, not an export. ``device`` ``auto`` takes CUDA or Apple MPS through torch when
    present, else the CPU.

    Threads may call ``predict`` at once: forwards of one input shape run one at a time, and
    different shapes run side by side. The first forward of a new shape builds its model
    (export, compile) under a build lock that forwards of ready shapes never wait for, so a
    photo of a new aspect ratio does not stall a live stream.
    """

    def __init__(
        self,
        model: ModelSpec | str = DEFAULT_MODEL,
        *,
        weights: str | Path | None = None,
        size: int | None = None,
        keep_aspect: bool = False,
        threads: int | None = None,
        device: str = "auto",
        weights_config: Mapping[str, object] | None = None,
        backend: str = "auto",
        calibration: Sequence[np.ndarray] | None = None,
        eager: bool = False,
    ) -> None:
        self.spec = as_spec(model)
        self.size = self.spec.default_size if size is None else size
        self.spec.check_size(self.size)
        self.keep_aspect = keep_aspect
        self.threads = threads
        self.eager = eager
        self._requested = {"weights": weights, "weights_config": dict(weights_config or {}), "device": device,
                           "backend": check_name(backend)}
        self._calibration = list(calibration) if calibration is not None else None
        self._load_lock = threading.Lock()
        self._network_lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._run_locks = _ShapeLocks()
        self._ready: set[tuple[int, int]] = set()
        self._network: torch.nn.Module | None = None
        self._loaded: Loaded | None = None

    @property
    def model_name(self) -> str:
        return self.spec.name

    def load(self) -> DepthEstimator:
        """Resolve and verify the weights, choose and build the backend, and prepare the square
        input; once (later calls return at once). Returns the estimator."""
        with self._load_lock:
            if self._loaded is None:
                self._loaded = self._load()
        return self

    def _load(self) -> Loaded:
        requested = self._requested
        device = pick_device(requested["device"])
        wanted, origin = requested_backend(requested["backend"])
        if wanted != "auto" and device.type == "cpu":
            require(wanted)  # before the weights: a backend this machine cannot run fails at once
        spec = weights_spec(self.spec.weights, requested["weights"], requested["weights_config"])
        resolved = resolve(spec)
        sha = verify(resolved.path, spec.expected_sha256)
        log.info("model: %s; weights: %s (%s)", self.spec.name, resolved.path, resolved.origin)
        load = partial(self._load_network, resolved.path, sha, device)
        network = Network(self.spec.name, load, sha, resolved.path, self.spec.graph_source(),
                          self.spec.runtime_form, self.spec.export_form)
        if device.type == "cpu" and wanted == "auto":  # measured once per machine, model and setting
            measure_hw = self.spec.input_size(*MEASURE_FRAME_HW, self.size, self.keep_aspect)
            choice = choose_auto(network, threads=self.threads, input_hw=measure_hw)
            name, backend = choice.name, choice.backend
        else:
            name = wanted if wanted != "auto" and device.type == "cpu" else "torch"
            backend = create_backend(name, network, threads=self.threads, calibration=self._calibration_inputs,
                                     eager=self.eager)
        how = " (auto)" if wanted == "auto" else f" ({origin})" if origin else ""
        runtime = getattr(backend, "runtime", None)  # int8: what runs the quantized model
        log.info("backend: %s%s%s on %s, %s", name, how, f", run by {runtime}" if runtime else "", device,
                 thread_count(self.threads))
        if not backend.has_exports():
            load()  # now, so that bad weights fail here and not on the first frame
        if not self.keep_aspect:
            self._prepare(backend, self.spec.input_size(*MEASURE_FRAME_HW, self.size, False))
        return Loaded(device, resolved.path, sha, backend, name)

    @property
    def loaded(self) -> Loaded:
        """What :meth:`load` found and built; ``RuntimeError`` before it."""
        if self._loaded is None:
            raise RuntimeError(f"the {self.spec.name} estimator is not loaded: call load() first "
                               "(build_estimator and create_estimator return loaded ones)")
        return self._loaded

    @property
    def backend(self) -> Backend:
        """The backend that runs the network."""
        return self.loaded.backend

    @property
    def backend_name(self) -> str:
        """The name of the backend that runs (``auto`` resolved)."""
        return self.loaded.backend_name

    def model_settings(self) -> dict:
        """Keyword arguments (picklable) for an estimator of the same model in another process:
        the model's name (a model registered at run time must be registered there too), the same
        weights (checked by their hash), size, keep-aspect sizing, threads and device; the caller
        picks the backend."""
        loaded = self.loaded
        return {"model": self.spec.name, "weights": str(loaded.weights_path),
                "weights_config": {"sha256": loaded.weights_sha256}, "size": self.size,
                "keep_aspect": self.keep_aspect, "threads": self.threads, "device": loaded.device.type}

    @property
    def network(self) -> torch.nn.Module:
        """The loaded network (built on first use: a warm export cache does not need it)."""
        loaded = self.loaded
        return self._load_network(loaded.weights_path, loaded.weights_sha256, loaded.device)

    def _load_network(self, path: Path, sha256: str, device: torch.device) -> torch.nn.Module:
        with self._network_lock:
            if self._network is None:
                self._network = load_network(self.spec, path, sha256).to(device)
            return self._network

    def _prepare(self, backend: Backend, shape: tuple[int, int]) -> None:
        """Build what a network input of ``shape`` needs, once (other shapes keep running)."""
        if shape in self._ready:
            return
        with self._build_lock:
            if shape not in self._ready:
                backend.prepare(*shape)
                self._ready.add(shape)

    def _calibration_inputs(self, height: int, width: int) -> list[np.ndarray]:
        frames = self._calibration if self._calibration is not None else synthetic_frames()
        return [self.spec.preprocess(frame, (height, width)) for frame in frames]

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input (h, w) for a frame of this size."""
        return self.spec.input_size(height, width, self.size, self.keep_aspect)

    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The normalised network input for ``frame_bgr``."""
        return self.spec.preprocess(frame_bgr, self.input_size(*frame_bgr.shape[:2]))

    def infer(self, batch: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
        """Run the network on a preprocessed batch and bring its output to ``out_hw`` (the model's
        postprocessing)."""
        backend = self.loaded.backend
        shape = tuple(batch.shape[-2:])
        self._prepare(backend, shape)
        with self._run_locks(shape):
            depth = backend(batch)
        return self.spec.postprocess(depth, out_hw)

    def predict(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Float32 HxW inverse relative depth for a BGR uint8 frame (after :meth:`load`)."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"expected a BGR HxWx3 frame, got shape {frame_bgr.shape}")
        return self.infer(self.preprocess(frame_bgr), frame_bgr.shape[:2])


def create_estimator(model_name: str = DEFAULT_MODEL, weights: str | Path | None = None, size: int | None = None,
                     keep_aspect: bool = False, backend: str = "auto", threads: int = 0) -> DepthEstimator:
    """A loaded estimator (``livedepth.create_estimator``): ``predict(frame_bgr)`` gives HxW
    float32 depth at the frame's size, ``backend_name`` names the backend that runs.

    ``weights`` None: the usual resolution (``$LIVEDEPTH_WEIGHTS``, the cache, a download);
    ``size`` None: the model's default; ``threads`` 0: every core this process may use.
    """
    return DepthEstimator(model_name, weights=weights, size=size, keep_aspect=keep_aspect, backend=backend,
                          threads=threads or available_cores()).load()
