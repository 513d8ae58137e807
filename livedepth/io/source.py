"""The :class:`Source` interface every frame source implements (OpenCV's and picamera2's)."""

from __future__ import annotations

import threading
import time

import numpy as np

#: Consecutive failed camera reads tolerated before the camera counts as gone (seconds).
CAMERA_STALL_S = 5.0


class Source:
    """Base class: ``read()`` returns the next BGR frame or ``None`` at the end."""

    #: ``True`` when frames arrive at their own pace (camera, stream, realtime file).
    paced = True
    name = "source"

    @property
    def fps(self) -> float:
        """Nominal frame rate (frames per second, float); 0 when unknown."""
        return 0.0

    def read(self, stop: threading.Event) -> np.ndarray | None:
        raise NotImplementedError

    def capture_time(self) -> float:
        """When the frame ``read()`` just returned was captured, in the ``time.monotonic()`` clock.

        By default the time it was read; a camera that stamps its frames overrides this.
        """
        return time.monotonic()

    def release(self) -> None:
        """Free the device or file; idempotent."""
