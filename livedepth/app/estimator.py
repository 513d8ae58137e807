"""The builder of the depth estimator: ``[model]`` and ``[weights]`` settings in, a ready estimator out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from livedepth.backends import available_cores
from livedepth.inference.estimator import DepthEstimator
from livedepth.settings import Settings


def build_estimator(settings: Settings, weights: str | Path | None = None,
                    calibration: Sequence[np.ndarray] | None = None) -> DepthEstimator:
    """The estimator for ``settings.model`` and ``settings.weights``; ``weights`` is ``--weights``.

    ``calibration``: the user's frames that the int8 backend is calibrated and checked on.
    """
    model = settings.model
    return DepthEstimator(
        weights=weights,
        size=model.size,
        keep_aspect=model.keep_aspect,
        threads=model.threads or available_cores(),
        device=model.device,
        weights_config={k: v for k, v in vars(settings.weights).items() if v is not None},
        backend=model.backend,
        calibration=calibration,
    )
