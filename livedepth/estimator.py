"""Single-frame depth: preprocessing, the model, and upsampling back to the frame."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from livedepth import weights as weights_mod
from livedepth.model import build_model

log = logging.getLogger(__name__)

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


def pick_device(device: str) -> torch.device:
    """The requested device, falling back to CPU with a warning when CUDA is absent."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        log.warning("CUDA requested but not available; using the CPU")
        return torch.device("cpu")
    return torch.device(device)


class DepthEstimator:
    """MiDaS v2.1 small on one BGR frame at a time.

    ``predict`` returns float32 HxW inverse relative depth (larger is nearer) at the frame's
    resolution. ``size`` is the network's long side; ``keep_aspect=True`` selects the
    official keep-aspect sizing, otherwise the input is ``size x size``.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        size: int = 256,
        keep_aspect: bool = False,
        threads: int | None = None,
        device: str = "cpu",
        weights_config: Mapping[str, object] | None = None,
    ) -> None:
        if size % 32:
            raise ValueError(f"size must be a multiple of 32, got {size}")
        if threads:
            torch.set_num_threads(threads)
        self.size = size
        self.keep_aspect = keep_aspect
        self.device = pick_device(device)
        spec = weights_mod.weights_spec(weights, weights_config)
        resolved = weights_mod.resolve(spec)
        model = build_model()
        self.weights_sha256 = weights_mod.load_state_dict_into(model, resolved.path, spec.sha256)
        self.weights_path = resolved.path
        log.info("weights: %s (%s)", resolved.path, resolved.origin)
        self.model = model.to(self.device)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input (h, w) for a frame of this size."""
        return network_size(height, width, self.size, self.keep_aspect)

    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The normalised network input for ``frame_bgr``."""
        return preprocess(frame_bgr, self.input_size(*frame_bgr.shape[:2]))

    @torch.inference_mode()
    def infer(self, batch: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
        """Run the network on a preprocessed batch and upsample (bicubic) to ``out_hw``."""
        x = torch.from_numpy(batch).to(self.device)
        depth = self.model(x).unsqueeze(1)
        depth = F.interpolate(depth, size=out_hw, mode="bicubic", align_corners=False)
        return depth[0, 0].float().cpu().numpy()

    def predict(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Float32 HxW inverse relative depth for a BGR uint8 frame."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"expected a BGR HxWx3 frame, got shape {frame_bgr.shape}")
        return self.infer(self.preprocess(frame_bgr), frame_bgr.shape[:2])
