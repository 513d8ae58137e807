"""Output stages of the live pipeline: anything that consumes rendered depth frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class RenderedFrame:
    """One processed frame as the output stage sees it."""

    image: np.ndarray  # BGR uint8, the colorizer's layout
    depth: np.ndarray  # float32 HxW inverse relative depth
    source: np.ndarray  # the BGR input frame
    frame_id: int  # capture order, strictly increasing
    captured_at: float  # time.monotonic() when the frame was read


class Sink(Protocol):
    """An output stage. ``write`` runs on the main thread and must not block for long."""

    def write(self, frame: RenderedFrame) -> None: ...

    def close(self) -> None: ...
