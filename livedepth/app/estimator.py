"""The builder of the depth estimator: ``[model]`` and ``[weights]`` settings in, a loaded estimator out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from livedepth.backends.system import available_cores
from livedepth.inference.estimator import DepthEstimator
from livedepth.model import registry
from livedepth.model.weights import resolve, weights_spec
from livedepth.settings import Settings


def weights_config(settings: Settings) -> dict:
    """The ``[weights]`` table's values that are set."""
    return {k: v for k, v in vars(settings.weights).items() if v is not None}


def build_estimator(settings: Settings, weights: str | Path | None = None,
                    calibration: Sequence[np.ndarray] | None = None) -> DepthEstimator:
    """The loaded estimator for ``settings.model`` and ``settings.weights``; ``weights`` is ``--weights``.

    ``calibration``: the user's frames that the int8 backend is calibrated and checked on.
    """
    model = settings.model
    return DepthEstimator(
        model.name,
        weights=weights,
        size=model.size,
        keep_aspect=model.keep_aspect,
        threads=model.threads or available_cores(),
        device=model.device,
        weights_config=weights_config(settings),
        backend=model.backend,
        calibration=calibration,
    ).load()


def resolve_weights(settings: Settings, weights: str | Path | None = None) -> Path:
    """The weights file the settings' model would load (downloaded if needed); ``weights`` is ``--weights``."""
    source = registry.get(settings.model.name).weights
    return resolve(weights_spec(source, weights, weights_config(settings))).path
