"""Raw depth export: 16-bit gray FFV1 in .mkv, or a folder of 16-bit PNGs, with a linear scale.

A stored value ``v`` (0..65535) means ``depth = offset + v * step``. The scale is fixed from the
first frame, so nothing is buffered: its finite values span ``[lo, hi]``, and the stored range
is that span widened by ``HEADROOM`` spans on each side (``offset = lo - HEADROOM * span``,
``step = (1 + 2 * HEADROOM) * span / 65535``). Later values outside it are clipped and counted.
The scale goes into a sidecar JSON (``RAW.mkv.json``, or ``depth.json`` in the folder) and,
for .mkv, the container metadata.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from livedepth.core.errors import LivedepthError

log = logging.getLogger(__name__)

#: Spans of the first frame's depth range kept free below and above it.
HEADROOM = 1.0
MAX_VALUE = 65535


@dataclass(frozen=True)
class DepthScale:
    """``depth = offset + value * step`` for 16-bit ``value``; quantisation step is ``step``."""

    offset: float
    step: float

    @classmethod
    def from_first_frame(cls, depth: np.ndarray, headroom: float = HEADROOM) -> DepthScale:
        """The scale for a video whose first depth map is ``depth``."""
        finite = depth[np.isfinite(depth)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        span = hi - lo
        if span <= 1e-6 * max(abs(lo), abs(hi), 1e-12):
            span = max(abs(hi), 1.0)
        return cls(offset=lo - headroom * span, step=(1 + 2 * headroom) * span / MAX_VALUE)

    def encode(self, depth: np.ndarray) -> tuple[np.ndarray, int]:
        """uint16 values for ``depth`` and how many pixels were clipped (NaN counts as clipped)."""
        values = (depth.astype(np.float64) - self.offset) / self.step
        clipped = int(np.count_nonzero(~((values >= -0.5) & (values <= MAX_VALUE + 0.5))))
        values = np.nan_to_num(values, nan=0.0, posinf=MAX_VALUE, neginf=0.0)
        return np.clip(np.rint(values), 0, MAX_VALUE).astype(np.uint16), clipped

    def decode(self, values: np.ndarray) -> np.ndarray:
        """Float32 depth for stored uint16 ``values``."""
        return (self.offset + values.astype(np.float64) * self.step).astype(np.float32)

    def as_dict(self) -> dict[str, object]:
        return {"offset": self.offset, "step": self.step, "formula": "depth = offset + value * step",
                "max_value": MAX_VALUE, "headroom": HEADROOM}


def sidecar_path(path: Path) -> Path:
    """Where the scale JSON of a raw export lives."""
    return path / "depth.json" if path.suffix.lower() != ".mkv" else path.with_name(path.name + ".json")


def load_scale(path: str | Path) -> DepthScale:
    """The :class:`DepthScale` of a raw export (``.mkv`` file or PNG folder)."""
    data = json.loads(sidecar_path(Path(path)).read_text())
    return DepthScale(float(data["offset"]), float(data["step"]))


class RawDepthWriter:
    """Writes float depth maps as 16-bit values to ``path`` (``.mkv``, else a PNG folder).

    The export is written to ``work_path`` (a temporary name next to ``path``) and moved to
    ``path`` by :meth:`finish`; :meth:`discard` removes it.
    """

    def __init__(self, path: Path, work_path: Path, time_base: Fraction, rate: Fraction) -> None:
        self.path, self.work_path = path, work_path
        self.is_mkv = path.suffix.lower() == ".mkv"
        self.time_base, self.rate = Fraction(time_base), Fraction(rate)
        self.scale: DepthScale | None = None
        self.frames = 0
        self.clipped_pixels = 0
        self.clipped_frames = 0
        self._container = None
        self._stream = None
        self._index = None
        if work_path.is_dir():
            shutil.rmtree(work_path)
        if not self.is_mkv:
            work_path.mkdir()
            self._index = (work_path / "frames.csv").open("w")
            self._index.write("index,pts,seconds\n")

    def write(self, depth: np.ndarray, pts: int) -> None:
        """Store one depth map with its pts (in ``time_base`` units)."""
        if self.scale is None:
            self.scale = DepthScale.from_first_frame(depth)
            if self.is_mkv:
                self._open_mkv(depth.shape[1], depth.shape[0])
        values, clipped = self.scale.encode(depth)
        if clipped:
            self.clipped_pixels += clipped
            self.clipped_frames += 1
        if self.is_mkv:
            import av

            frame = av.VideoFrame.from_ndarray(values, format="gray16le")
            frame.pts, frame.time_base = pts, self.time_base
            self._container.mux(self._stream.encode(frame))
        else:
            name = self.work_path / f"{self.frames:06d}.png"
            if not cv2.imwrite(str(name), values):
                raise LivedepthError(f"cannot write {name}")
            self._index.write(f"{self.frames},{pts},{float(pts * self.time_base):.6f}\n")
        self.frames += 1

    def _open_mkv(self, width: int, height: int) -> None:
        import av

        self._container = av.open(str(self.work_path), "w", format="matroska")
        for key, value in self.scale.as_dict().items():
            self._container.metadata[f"LIVEDEPTH_DEPTH_{key.upper()}"] = str(value)
        self._stream = self._container.add_stream("ffv1", rate=self.rate)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "gray16le"
        self._stream.time_base = self.time_base
        self._stream.codec_context.time_base = self.time_base

    def close(self) -> None:
        """Flush and close the file (safe to call twice)."""
        if self._container is not None:
            container, self._container = self._container, None
            try:
                container.mux(self._stream.encode(None))
            finally:
                container.close()
        if self._index is not None:
            self._index.close()
            self._index = None

    def finish(self) -> None:
        """Close, write the sidecar JSON and move the export to its final name."""
        self.close()
        if self.scale is None:
            self.discard()
            return
        if self.path.is_dir():
            shutil.rmtree(self.path)
        os.replace(self.work_path, self.path)
        meta = {**self.scale.as_dict(), "frames": self.frames, "time_base": str(self.time_base),
                "clipped_pixels": self.clipped_pixels, "clipped_frames": self.clipped_frames}
        sidecar_path(self.path).write_text(json.dumps(meta, indent=2) + "\n")
        if self.clipped_pixels:
            log.warning("raw depth: %d pixels in %d frames fell outside the scale set by the first frame "
                        "and were clipped", self.clipped_pixels, self.clipped_frames)

    def discard(self) -> None:
        """Close and delete the unfinished export."""
        self.close()
        if self.work_path.is_dir():
            shutil.rmtree(self.work_path)
        else:
            self.work_path.unlink(missing_ok=True)
