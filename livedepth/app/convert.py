"""Builders for ``livedepth convert``: the checked outputs, the :class:`~livedepth.run.convert.Converter`
for the settings, the int8 calibration frames, and the summary line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from livedepth.app.render import build_colorizer, make_temporal
from livedepth.core.errors import LivedepthError
from livedepth.core.files import check_folder
from livedepth.core.vocab import MUXERS
from livedepth.io.pointcloud import Camera
from livedepth.io.video import probe, sample_frames
from livedepth.run.convert import ConvertResult, Converter, partial_path
from livedepth.settings import Settings

log = logging.getLogger(__name__)

#: The suffix of a batch's raw depth folders: ``NAME.depth/`` next to ``NAME.mp4``.
RAW_FOLDER_SUFFIX = ".depth"


def check_raw_name(raw: Path) -> None:
    """A one-line error unless ``--raw`` names a ``.mkv`` file or a folder (no extension, or ``.depth``)."""
    if raw.suffix.lower() not in ("", ".mkv", RAW_FOLDER_SUFFIX):
        raise LivedepthError(f"--raw takes a .mkv file or a folder name without an extension, got {raw}")


def check_outputs(source: Path, output: Path, raw: Path | None, overwrite: bool) -> None:
    """One-line errors for outputs that cannot or must not be written."""
    targets = [output] + ([raw] if raw is not None else [])
    for path in targets:
        if path.resolve() == source.resolve():
            raise LivedepthError(f"output {path} is the input")
        check_folder(path.parent)
        for candidate in (path, partial_path(path)):
            if candidate.exists() and not overwrite:
                raise LivedepthError(f"{candidate} exists; use --overwrite to replace it")
    if raw is not None:
        check_raw_name(raw)
        if raw.is_dir() and any(raw.iterdir()) and not (raw / "depth.json").is_file():
            raise LivedepthError(f"--raw folder {raw} is not empty and is not a livedepth export")
    if output.is_dir():
        raise LivedepthError(f"output {output} is a folder; name a video file")
    if output.suffix.lower() not in MUXERS:
        raise LivedepthError(f"output must be .mp4, .mov or .mkv, got {output.name}")


def check_ply_folder(folder: Path, overwrite: bool) -> None:
    """One-line errors for a ``--ply`` folder that cannot (or, without ``overwrite``, must not) be written."""
    if folder.exists() and not folder.is_dir():
        raise LivedepthError(f"--ply {folder} is a file; name a folder")
    check_folder(folder if folder.is_dir() else folder.parent)
    if folder.is_dir() and not overwrite and any(folder.glob("*.ply")):
        raise LivedepthError(f"--ply folder {folder} already holds point clouds; use --overwrite to replace them")


def summary_line(result: ConvertResult) -> str:
    """``converted N frames (D s of video) in W s: F frames/s (Xx real time) -> OUT``."""
    fps = result.frames / result.wall_seconds if result.wall_seconds > 0 else 0.0
    speed = result.video_seconds / result.wall_seconds if result.wall_seconds > 0 else 0.0
    return (f"converted {result.frames} frames ({result.video_seconds:.2f} s of video) in "
            f"{result.wall_seconds:.2f} s: {fps:.1f} frames/s ({speed:.2f}x real time) -> {result.output}")


def build_converter(settings: Settings, source: Path, output: Path, predict: Callable[[np.ndarray], np.ndarray],
                    on_frame: Callable[[], None] | None = None, keep_stopped: bool = True) -> Converter:
    """A :class:`Converter` for one file with ``settings`` (``[render]``, ``[convert]``).

    The input is probed and the outputs are checked (one-line errors) before anything is written.
    """
    convert = settings.convert
    colorizer = build_colorizer(settings.render, settings.stereo)
    info = probe(source)
    check_outputs(source, output, convert.raw, convert.overwrite)
    if convert.ply is not None:
        check_ply_folder(convert.ply, convert.overwrite)
    log.info("convert: %s (%dx%d, %.3f fps, %s frames) -> %s", source, info.width, info.height, info.fps,
             info.frame_count or "?", output)
    return Converter(source, output, info, predict, colorizer, audio=convert.audio, raw=convert.raw,
                     crf=convert.crf, preset=convert.preset, fragmented=convert.fragmented,
                     keep_damaged=convert.keep_damaged, on_frame=on_frame, keep_stopped=keep_stopped,
                     temporal=make_temporal(settings), ply=convert.ply, ply_every=convert.ply_every,
                     camera=Camera(settings.pointcloud.fov, settings.pointcloud.depth_ratio))


def calibration_frames(settings: Settings, source: Path, count: int = 8) -> list[np.ndarray] | None:
    """For the int8 backend: frames sampled across ``source`` to calibrate it on (else None)."""
    if settings.model.backend != "int8":
        return None
    frames = sample_frames(source, count)
    log.info("int8: calibrating on %d frames sampled across %s", len(frames), source)
    return frames


def progress_enabled(quiet: bool) -> bool:
    """Progress bars only on an interactive stderr and without --quiet."""
    return not quiet and sys.stderr.isatty()

