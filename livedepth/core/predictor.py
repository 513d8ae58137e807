"""The seam between the stages and a depth model: what the pipeline, converter, web server,
batch and bench call. :class:`~livedepth.inference.estimator.DepthEstimator` is one (loaded)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

#: A BGR uint8 HxWx3 frame -> float32 HxW inverse relative depth at the frame's size.
Predict = Callable[[np.ndarray], np.ndarray]


class Predictor(Protocol):
    """A loaded depth model, safe to call from several threads."""

    @property
    def model_name(self) -> str:
        """The registered model it runs (``livedepth models``)."""

    @property
    def backend_name(self) -> str:
        """The backend that runs it (``auto`` resolved)."""

    def predict(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Float32 HxW inverse relative depth (larger is nearer) for a BGR uint8 frame."""

    def model_settings(self) -> dict:
        """Picklable keyword arguments for an estimator of the same model in another process
        (the web server's photo uploads build one)."""
