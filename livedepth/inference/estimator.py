"""Single-frame depth: preprocessing, the model, and upsampling back to the frame."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from livedepth import backends
from livedepth.model import weights as weights_mod

log = logging.getLogger(__name__)

#: The frame (h, w) whose network input ``auto`` times backends on with keep-aspect sizing: 4:3,
#: as most cameras (the choice barely depends on the aspect).
MEASURE_FRAME_HW = (480, 640)

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def network_size(height: int, width: int, size: int = 256, keep_aspect: bool = False) -> tuple[int, int]:
    """The network's input (height, width) for a frame.

    Square mode gives ``(size, size)``. Keep-aspect mode is the official ``small_transform``:
    scale by ``min(size/H, size/W)``, round each side to a multiple of 32 (half to even),
    and floor instead where rounding would exceed ``size``.
    """
    if not keep_aspect:
        return size, size
    scale = min(size / height, size / width)

    def snap(x: float) -> int:
        y = int(np.round(x / 32) * 32)
        return int(np.floor(x / 32) * 32) if y > size else y

    return snap(scale * height), snap(scale * width)


def preprocess(frame_bgr: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """BGR uint8 HxWx3 -> normalised float32 ``(1, 3, h, w)``, as the official transform.

    The frame is scaled to [0, 1] before the bicubic resize (resizing uint8 first is wrong),
    with no clipping or antialiasing.
    """
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(1 / 255)
    h, w = out_hw
    resized = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
    normalised = (resized - MEAN) / STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])


def synthetic_frames(count: int = 8, height: int = 480, width: int = 640, seed: int = 0) -> list[np.ndarray]:
    """Deterministic smooth BGR uint8 frames (gradients plus blurred noise) for int8 calibration.

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


class DepthEstimator:
    """MiDaS v2.1 small on one BGR frame at a time. Thread-safe.

    ``predict`` returns float32 HxW inverse relative depth (larger is nearer) at the frame's
    resolution. ``size`` is the network's long side; ``keep_aspect=True`` selects the
    official keep-aspect sizing, otherwise the input is ``size x size``.

    ``backend`` is ``"auto"`` (the fastest installed faithful fp32 backend, measured on the
    first start with these settings on this machine and cached: ``backends.choose_auto``;
    ``$LIVEDEPTH_BACKEND`` replaces it), ``"torch"``, ``"onnx"``, ``"openvino"`` or ``"int8"``
    (opt-in, quantized; calibrated on ``calibration`` BGR frames, synthetic frames by
    default). See ``livedepth.backends``. ``eager=True`` (torch only) builds nothing per input
    shape: slower per frame, but a one-off shape (a photo) costs one forward, not an export.
    ``device`` ``auto`` takes CUDA or Apple MPS through torch when present, else the CPU.

    Threads may call ``predict`` at once: forwards of one input shape run one at a time, and
    different shapes run side by side. The first forward of a new shape builds its model
    (export, compile) under a build lock that forwards of ready shapes never wait for, so a
    photo of a new aspect ratio does not stall a live stream.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        size: int = 256,
        keep_aspect: bool = False,
        threads: int | None = None,
        device: str = "auto",
        weights_config: Mapping[str, object] | None = None,
        backend: str = "auto",
        calibration: Sequence[np.ndarray] | None = None,
        eager: bool = False,
    ) -> None:
        if size % 32:
            raise ValueError(f"size must be a multiple of 32, got {size}")
        self.size = size
        self.keep_aspect = keep_aspect
        self.threads = threads
        self.device = pick_device(device)
        spec = weights_mod.weights_spec(weights, weights_config)
        resolved = weights_mod.resolve(spec)
        self.weights_path = resolved.path
        self.weights_sha256 = weights_mod.verify(resolved.path, spec.sha256)
        self._model = None
        self._model_lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._run_locks = _ShapeLocks()
        self._ready: set[tuple[int, int]] = set()
        log.info("weights: %s (%s)", resolved.path, resolved.origin)
        self._calibration = list(calibration) if calibration is not None else None
        requested, origin = backends.requested_backend(backend)
        name = backends.resolve_name(requested) if requested != "auto" else None  # checks the name
        common = {"weights_sha256": self.weights_sha256, "weights_path": self.weights_path, "threads": threads}
        if self.device.type == "cpu" and requested == "auto":  # measured once per machine and setting
            measure_hw = network_size(*MEASURE_FRAME_HW, size, keep_aspect)
            choice = backends.choose_auto(lambda: self.model, input_hw=measure_hw, **common)
            name, self.backend = choice.name, choice.backend
        else:
            name = name if self.device.type == "cpu" else "torch"
            self.backend = backends.create_backend(name, lambda: self.model, calibration=self._calibration_inputs,
                                                   eager=eager, **common)
        self.backend_name = name
        how = " (auto)" if requested == "auto" else f" ({origin})" if origin else ""
        runtime = getattr(self.backend, "runtime", None)  # int8: what runs the quantized model
        log.info("backend: %s%s%s on %s, %s", name, how, f", run by {runtime}" if runtime else "", self.device,
                 thread_count(threads))
        if not self.backend.has_exports():
            self._load_model()  # now, so that bad weights fail here and not on the first frame
        if not keep_aspect:
            self._prepare((size, size))

    def model_settings(self) -> dict:
        """Keyword arguments (picklable) for an estimator of the same model in another process:
        the same weights (checked by their hash), size, keep-aspect sizing, threads and device;
        the caller picks the backend."""
        return {"weights": str(self.weights_path), "weights_config": {"sha256": self.weights_sha256},
                "size": self.size, "keep_aspect": self.keep_aspect, "threads": self.threads,
                "device": self.device.type}

    @property
    def model(self):
        """The loaded ``MidasSmall`` (built on first use: a warm export cache does not need it)."""
        return self._load_model()

    def _load_model(self):
        with self._model_lock:
            if self._model is None:
                from livedepth.model.midas import build_model  # timm takes seconds to import; a warm export cache never needs it

                model = build_model()
                weights_mod.load_state_dict_into(model, self.weights_path, self.weights_sha256)
                self._model = model.to(self.device)
            return self._model

    def _prepare(self, shape: tuple[int, int]) -> None:
        """Build what a network input of ``shape`` needs, once (other shapes keep running)."""
        if shape in self._ready:
            return
        with self._build_lock:
            if shape not in self._ready:
                self.backend.prepare(*shape)
                self._ready.add(shape)

    def _calibration_inputs(self, height: int, width: int) -> list[np.ndarray]:
        frames = self._calibration if self._calibration is not None else synthetic_frames()
        return [preprocess(frame, (height, width)) for frame in frames]

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input (h, w) for a frame of this size."""
        return network_size(height, width, self.size, self.keep_aspect)

    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The normalised network input for ``frame_bgr``."""
        return preprocess(frame_bgr, self.input_size(*frame_bgr.shape[:2]))

    def infer(self, batch: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
        """Run the network on a preprocessed batch and upsample (bicubic) to ``out_hw``.

        ``cv2.INTER_CUBIC`` matches the official bicubic upsampling (``align_corners=False``)
        within 3e-5 and costs 0.15 ms at 640x480 instead of torch's 8 ms.
        """
        shape = tuple(batch.shape[-2:])
        self._prepare(shape)
        with self._run_locks(shape):
            depth = self.backend(batch)
        height, width = out_hw
        if depth.shape != (height, width):
            depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_CUBIC)
        return np.ascontiguousarray(depth, dtype=np.float32)

    def predict(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Float32 HxW inverse relative depth for a BGR uint8 frame."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"expected a BGR HxWx3 frame, got shape {frame_bgr.shape}")
        return self.infer(self.preprocess(frame_bgr), frame_bgr.shape[:2])
