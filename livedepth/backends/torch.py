"""The torch backend: the network's runtime form, channels_last, traced and frozen per input size."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

from livedepth.backends.base import Network


class TorchBackend:
    """Faithful fp32 torch: the network's runtime form (MiDaS: BN folded), channels_last, traced
    and frozen per input size; ``eager``: the runtime form as it is, nothing built per size."""

    name = "torch"

    def __init__(self, network: Network, threads: int | None = None, eager: bool = False) -> None:
        self.threads = threads
        self.eager = eager
        fast = network.runtime_form(copy.deepcopy(network.load())).eval()
        self.model = fast.to(memory_format=torch.channels_last)
        self.device = next(self.model.parameters()).device
        self._graphs: dict[tuple[int, int], torch.jit.ScriptModule] = {}

    def has_exports(self) -> bool:
        return False

    def prepare(self, height: int, width: int) -> None:
        if self.eager or (height, width) in self._graphs:
            return
        example = torch.zeros(1, 3, height, width, device=self.device).contiguous(memory_format=torch.channels_last)
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(self.model, example, check_trace=False)
            self._graphs[height, width] = torch.jit.freeze(traced)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.threads:
            torch.set_num_threads(self.threads)
        height, width = batch.shape[-2:]
        self.prepare(height, width)
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
            forward = self.model if self.eager else self._graphs[height, width]
            return forward(x)[0].float().cpu().numpy()
