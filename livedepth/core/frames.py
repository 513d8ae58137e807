"""The records that travel between stages: a captured or decoded frame, and its rendering."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One input frame: BGR pixels, its order, when it was read and (for files) its pts."""

    image: np.ndarray  # BGR uint8 HxWx3
    index: int  # strictly increasing from 0 in capture or decode order
    captured_at: float  # time.monotonic() clock: right after the read, or the sensor's timestamp (picamera2)
    pts: int | None = None  # video files: the frame's pts in its stream's time base


@dataclass(frozen=True)
class Rendered:
    """A frame with its depth and the colorized image the sinks receive."""

    frame: Frame
    depth: np.ndarray  # float32 HxW inverse relative depth
    image: np.ndarray  # BGR uint8, the colorizer's layout
    near: np.ndarray | None = None  # uint8 HxW normalised depth the colours came from, 255 nearest (live runs)
    unit: np.ndarray | None = None  # float32 HxW normalised depth n (1 nearest), when a later stage needs it
