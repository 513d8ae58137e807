"""Output stages of the live pipeline: anything that consumes rendered depth frames."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from livedepth.core.frames import Rendered
from livedepth.core.vocab import DEFAULT_FPS
from livedepth.io.video import VideoWriter

log = logging.getLogger(__name__)


class Sink:
    """An output stage. ``write`` gets every rendered frame on the output thread and must not
    block for long; ``poll`` runs about every ``poll_interval`` seconds between frames (for a
    window's events); ``close`` runs once at the end of the run.
    """

    #: seconds between ``poll`` calls while no frame arrives; ``None``: the sink needs none.
    poll_interval: float | None = None

    def write(self, rendered: Rendered) -> None:
        raise NotImplementedError

    def poll(self) -> None:
        """Handle events between frames."""

    def close(self) -> None:
        """Flush and free what the sink holds."""


def fit_into(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to fit ``width`` x ``height``, keeping its aspect, centred on black."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.zeros((height, width, 3), np.uint8)
    x, y = (width - new_w) // 2, (height - new_h) // 2
    canvas[y:y + new_h, x:x + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return canvas


class RecordSink(Sink):
    """Writes shown frames to an H.264 mp4 at their capture times (pts in ms since the first frame).

    The size is fixed by the first frame; later frames of another size (a layout switch) are
    fitted into it. The mp4 is fragmented, so an interrupted run leaves a playable file.
    """

    def __init__(self, path: str | Path, rate: float = DEFAULT_FPS) -> None:
        self.path = Path(path)
        self.rate = rate or DEFAULT_FPS
        self._writer = None
        self._t0: float | None = None
        self._last_pts = -1

    @property
    def frames_written(self) -> int:
        return self._writer.frames_written if self._writer is not None else 0

    def write(self, rendered: Rendered) -> None:
        image, captured_at = rendered.image, rendered.frame.captured_at
        if self._writer is None:
            h, w = image.shape[:2]
            self._writer = VideoWriter(self.path, w, h, time_base=Fraction(1, 1000), rate=self.rate)
            self._t0 = captured_at
            log.info("recording %dx%d to %s", w, h, self.path)
        image = fit_into(image, self._writer.width, self._writer.height)
        pts = max(round((captured_at - self._t0) * 1000), self._last_pts + 1)
        self._writer.write(image, pts)
        self._last_pts = pts

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            log.info("wrote %s (%d frames)", self.path, self._writer.frames_written)
