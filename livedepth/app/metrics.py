"""``livedepth metrics``: the temporal consistency of depth video files, read one frame at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from livedepth.core.errors import LivedepthError
from livedepth.io.orientation import Upright
from livedepth.io.video import open_input
from livedepth.render.colorize import check_colormap
from livedepth.render.metrics import (
    ColormapDecoder,
    ConsistencyReport,
    TemporalConsistency,
    decode_depth_frames,
    guess_colormap,
)


def read_video(path: str | Path, keep_depth_bits: bool = True) -> Iterator[np.ndarray]:
    """Frames of a video file one at a time, upright as a player shows them: 16-bit or 8-bit grey
    arrays for grey videos, else BGR."""
    with open_input(path) as container:
        if not container.streams.video:
            raise LivedepthError(f"no video stream in {path}")
        stream = container.streams.video[0]
        fmt = stream.codec_context.format.name if stream.codec_context.format else ""
        out = "gray16le" if keep_depth_bits and fmt.startswith("gray16") else "gray" if fmt == "gray" else "bgr24"
        upright = Upright(stream, path)
        for frame in container.decode(stream):
            yield upright(frame, out)


def read_png_folder(folder: str | Path) -> Iterator[np.ndarray]:
    """The PNGs of a folder in name order, unchanged (16-bit stays 16-bit)."""
    for path in sorted(Path(folder).glob("*.png")):
        yield cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def depth_pairs(
    video: str | Path, rgb: str | Path | None = None, colormap: str = "auto"
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(frame_bgr, depth)`` pairs for :func:`temporal_consistency` from files.

    Without ``rgb``, ``video`` is a side-by-side video (input | colorized depth, the ``side``
    layout). With ``rgb`` (the source video), ``video`` is depth only: a colorized depth video,
    an 8- or 16-bit grey video (e.g. the FFV1 ``--raw`` mkv) or a folder of 16-bit PNGs;
    frames pair up in order and the shorter input ends the measurement.
    """
    path = Path(video)
    if rgb is None:
        if path.is_dir():
            raise LivedepthError(f"{path} is raw depth; give the source video with --rgb SOURCE")
        decoder: ColormapDecoder | None = None
        for frame in read_video(path):
            if frame.ndim == 2:
                raise LivedepthError(f"{path} is a grey depth video; give the source video with --rgb SOURCE")
            half = frame.shape[1] // 2
            left, right = frame[:, :half], frame[:, half : 2 * half]
            if decoder is None:
                decoder = ColormapDecoder(guess_colormap(right) if colormap == "auto" else colormap)
            yield left, decoder.decode(right)
        return
    depths = read_png_folder(path) if path.is_dir() else read_video(path)
    yield from zip(read_video(rgb, keep_depth_bits=False), decode_depth_frames(depths, colormap))


def measure_video(video: Path, rgb: Path | None = None, colormap: str = "auto",
                  progress: bool = False) -> ConsistencyReport:
    """Temporal consistency of a depth video (see :func:`depth_pairs` for the inputs), read one
    frame at a time; a one-line error for a missing input or fewer than 2 frames."""
    if not video.exists():
        raise LivedepthError(f"input not found: {video}")
    if colormap != "auto":
        check_colormap(colormap)
    meter = TemporalConsistency()
    for frame, depth in tqdm(depth_pairs(video, rgb, colormap), unit="frame", disable=not progress, leave=False):
        meter.update(frame, depth)
    result = meter.result()
    if result.frames < 2:
        raise LivedepthError(f"need at least 2 frames to measure, got {result.frames}")
    return result
