"""The ONNX export of a network, cached per model, weights, graph version and input size."""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from livedepth.backends.base import Network
from livedepth.core.files import cache_dir, create_temp

log = logging.getLogger(__name__)

#: ONNX opset of the exported model.
OPSET = 17


def artifact_dir(weights_path: Path) -> Path:
    """Where exported models go: next to the weights, else the livedepth cache."""
    folder = weights_path.parent
    if os.access(folder, os.W_OK):
        return folder
    fallback = cache_dir()
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def export_module(network: Network, height: int, width: int) -> nn.Module:
    """The module exported for one input size: the network's export form (else its runtime form),
    made from a CPU copy of the loaded network."""
    model = copy.deepcopy(network.load()).cpu().eval()
    if network.export_form is not None:
        return network.export_form(model, height, width)
    return network.runtime_form(model)


def export_onnx(model: nn.Module, path: Path, height: int, width: int) -> Path:
    """Export ``model`` for a fixed ``(1, 3, height, width)`` input to ``path`` (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(path)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.zeros(1, 3, height, width),),
                str(tmp),
                dynamo=False,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["depth"],
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s", path)
    return path


@functools.cache
def _digest(name: str, code: str) -> str:
    digest = hashlib.sha256()
    for part in (name, code, inspect.getsource(export_module), inspect.getsource(export_onnx), str(OPSET),
                 torch.__version__):
        digest.update(part.encode())
    return digest.hexdigest()[:12]


def graph_version(network: Network) -> str:
    """A digest of everything that shapes the exported graph: the model's name and code, the
    export code, the opset and the torch version. It is part of every cached file's name, so a
    code change never reuses a stale export."""
    return _digest(network.name, network.code)


class PerSize:
    """Shared plumbing: one exported (cached) fp32 ONNX model per input size, and its runner."""

    def __init__(self, network: Network, threads: int | None) -> None:
        self.network = network
        self.folder = artifact_dir(network.weights_path)
        self.threads = threads
        self.stem = f"{network.name}-{network.weights_sha256}-g{graph_version(network)}"
        self._runners: dict[tuple[int, int], Callable[[np.ndarray], np.ndarray]] = {}

    def onnx_path(self, height: int, width: int) -> Path:
        """The cached fp32 ONNX file for this input size (exported on first use)."""
        path = self.folder / f"{self.stem}-{height}x{width}.onnx"
        if not path.is_file():
            export_onnx(export_module(self.network, height, width), path, height, width)
        return path

    def has_exports(self) -> bool:
        return any(self.folder.glob(f"{self.stem}-*.onnx"))

    def _build(self, height: int, width: int) -> Callable[[np.ndarray], np.ndarray]:
        raise NotImplementedError

    def prepare(self, height: int, width: int) -> None:
        """Build the runner for this input size now instead of on the first frame."""
        if (height, width) not in self._runners:
            self._runners[height, width] = self._build(height, width)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        height, width = batch.shape[-2:]
        self.prepare(height, width)
        return self._runners[height, width](np.ascontiguousarray(batch, dtype=np.float32))[0]
