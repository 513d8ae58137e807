"""How a player shows a video: the rotation and mirror of its display matrix (or legacy ``rotate`` tag).

Phones store a portrait clip as a landscape picture plus a display matrix saying "turn it 90
degrees". Every video reader in livedepth turns decoded frames upright with :class:`Upright`, so
each path (convert, batch, live, raw export, calibration, metrics) sees the picture a player
shows, and the outputs are written upright with no rotation of their own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import av
import cv2
import numpy as np
from av.sidedata.sidedata import Type

log = logging.getLogger(__name__)

#: Clockwise turns as OpenCV rotation codes.
_ROTATE_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
#: The display matrix's fixed point: 16.16 for its first two columns.
_ONE = 1 << 16


@dataclass(frozen=True)
class Orientation:
    """A stored picture shown turned ``rotation`` degrees clockwise (0, 90, 180 or 270), then
    mirrored left to right when ``mirror``; ``origin`` says where this was read."""

    rotation: int = 0
    mirror: bool = False
    origin: str = field(default="", compare=False)

    @classmethod
    def from_display_matrix(cls, matrix: Sequence[int]) -> Orientation:
        """From FFmpeg's 3x3 display matrix (row-major, 16.16 fixed point)."""
        # A stored pixel (x, y), y pointing down, is shown at (a*x + c*y, b*x + d*y).
        a, b, c, d = (matrix[i] / _ONE for i in (0, 1, 3, 4))
        mirror = a * d - b * c < 0
        if mirror:  # the mirror comes after the turn: undo it to read the turn
            a, c = -a, -c
        counter_clockwise = math.degrees(math.atan2(c, a))
        turn = round(counter_clockwise / 90) * 90
        if abs(turn - counter_clockwise) > 1:
            log.warning("the display matrix turns the picture by %.1f degrees; using %d", counter_clockwise, turn)
        return cls((-turn) % 360, mirror, "display matrix")

    @classmethod
    def from_rotate_tag(cls, value: str) -> Orientation:
        """From the legacy ``rotate`` stream tag: degrees clockwise (anything else is ignored)."""
        try:
            degrees = float(value)
        except ValueError:
            return cls()
        return cls(round(degrees / 90) * 90 % 360, False, "rotate tag")

    def __bool__(self) -> bool:
        return bool(self.rotation or self.mirror)

    def size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the upright picture of a ``width`` x ``height`` stored one."""
        return (height, width) if self.rotation in (90, 270) else (width, height)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The upright picture (a new array when anything turns; ``image`` itself otherwise)."""
        if self.rotation:
            image = cv2.rotate(image, _ROTATE_CODES[self.rotation])
        if self.mirror:
            image = cv2.flip(image, 1)
        return image

    def describe(self) -> str:
        """``rotated 90 degrees clockwise``, ``mirrored``, or both."""
        parts = [f"rotated {self.rotation} degrees clockwise"] if self.rotation else []
        return " and ".join(parts + (["mirrored"] if self.mirror else []))


def orientation_of(frame: av.VideoFrame | None, stream: av.VideoStream) -> Orientation:
    """How a player shows ``stream``: the display matrix ``frame`` carries (decoders attach the
    stream's own), else the stream's legacy ``rotate`` tag, else upright."""
    if frame is not None:
        matrix = frame.side_data.get(Type.DISPLAYMATRIX)
        if matrix is not None:
            return Orientation.from_display_matrix(np.frombuffer(bytes(matrix), np.int32))
    tag = next((value for key, value in stream.metadata.items() if key.lower() == "rotate"), None)
    return Orientation() if tag is None else Orientation.from_rotate_tag(tag)


class Upright:
    """Turns the decoded frames of one video stream upright as a player shows them.

    The first frame decides the orientation for the whole stream (an output keeps one size);
    when it turns or mirrors anything, that is logged once, naming ``name``.
    """

    def __init__(self, stream: av.VideoStream, name: object) -> None:
        self.stream, self.name = stream, name
        self.orientation: Orientation | None = None

    def __call__(self, frame: av.VideoFrame, format: str = "bgr24") -> np.ndarray:
        """``frame`` as an upright array in ``format``."""
        if self.orientation is None:
            self.orientation = orientation_of(frame, self.stream)
            if self.orientation:
                log.info("%s: %s as its %s says", self.name, self.orientation.describe(), self.orientation.origin)
        return self.orientation.apply(frame.to_ndarray(format=format))
