"""A model's network with its weights loaded: ``livedepth.load_network``, and ``livedepth weights``."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from livedepth.model import registry
from livedepth.model.registry import ModelSpec
from livedepth.model.weights import WeightsSpec, load_state_dict_into, resolve


def as_spec(model: ModelSpec | str) -> ModelSpec:
    """A model's spec from itself or its name (an unknown name is a one-line error)."""
    return model if isinstance(model, ModelSpec) else registry.get(model)


def load_network(model: ModelSpec | str, weights_path: str | Path, expected_sha256: str | None = None) -> nn.Module:
    """The network of ``model`` with the checkpoint at ``weights_path``, in eval mode, fp32, on
    the CPU: a normalised ``(1, 3, h, w)`` tensor in, ``(1, h, w)`` depth out.

    The checkpoint is checked against its sidecar and ``expected_sha256``, mapped by the model's
    ``adapt_state_dict`` and loaded strictly; one that does not fit is a one-line error.
    """
    spec = as_spec(model)
    network = spec.build_network().eval()
    load_state_dict_into(network, Path(weights_path), expected_sha256, adapt=spec.adapt_state_dict,
                         model_name=spec.name)
    return network


def fetch_and_verify(model: ModelSpec | str, weights: WeightsSpec, download: bool = False) -> str:
    """Resolve the weights (downloading them with ``download``), load them into the model and
    return ``PATH ok sha256=... (from ORIGIN)``."""
    spec = as_spec(model)
    resolved = resolve(weights, allow_download=download)
    sha = load_state_dict_into(spec.build_network(), resolved.path, weights.expected_sha256,
                               adapt=spec.adapt_state_dict, model_name=spec.name)
    return f"{resolved.path} ok sha256={sha} ({spec.name}, from {resolved.origin})"
