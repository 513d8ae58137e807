"""Video -> depth video: decode and inference threads and an encode stage joined by bounded channels.

No frame is dropped: each channel holds a few items and a full one makes its producer wait,
so memory stays bounded whatever the video's length. Audio and subtitle packets travel through
the same channels in file order and are muxed by the encode stage. Every stage ends its channel
in ``finally``; an error or a stop request in any stage stops the others.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from livedepth.core.errors import LivedepthError
from livedepth.core.frames import Frame, Rendered
from livedepth.core.predictor import Predict
from livedepth.core.stages import Channel, Stages
from livedepth.core.vocab import muxer
from livedepth.io.passthrough import kept_streams
from livedepth.io.pointcloud import Camera
from livedepth.io.rawdepth import RawDepthWriter
from livedepth.io.video import DecodeReport, VideoInfo, VideoWriter, demux, open_input

log = logging.getLogger(__name__)

#: Items each channel holds: enough to keep every stage busy, few enough to bound memory.
QUEUE_SIZE = 8


@dataclass
class StageTimes:
    """Seconds spent in each stage's work (not waiting on queues)."""

    decode: float = 0.0
    infer: float = 0.0
    filter: float = 0.0
    render: float = 0.0
    encode: float = 0.0


@dataclass
class ConvertResult:
    """What a conversion did."""

    frames: int
    video_seconds: float
    wall_seconds: float
    output: Path
    interrupted: str | None  # the stop reason when stopped early (e.g. "interrupted")
    report: DecodeReport
    times: StageTimes = field(default_factory=StageTimes)
    raw_clipped_pixels: int = 0


def partial_path(path: Path) -> Path:
    """The name an output is written under until it is complete: ``depth.partial.mp4``."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def output_size(info: VideoInfo, colorizer) -> tuple[int, int]:
    """(width, height) of the frames ``colorizer`` renders for this video (a trial on a copy)."""
    trial = copy.deepcopy(colorizer).render(np.zeros((info.height, info.width), np.float32),
                                            np.zeros((info.height, info.width, 3), np.uint8))
    return trial.shape[1], trial.shape[0]


class Converter:
    """One conversion of ``source`` to ``output``; :meth:`run` does it.

    ``predict`` maps a BGR frame to float32 depth (a ``Predictor``'s ``predict``); ``temporal`` (a
    :class:`~livedepth.render.temporal.TemporalFilter`) filters it before colours and ``raw``. With
    ``ply`` (a folder), every ``ply_every``-th frame's point cloud is saved there through
    ``camera`` as ``<frame index>.ply``. Decoding and
    inference run in their own threads; encoding runs on the thread that calls :meth:`run`,
    which calls ``on_frame()`` after each encoded frame (for a progress bar). The output is
    written as :func:`partial_path` and renamed when complete, or when stopped. ``audio`` (all,
    first or none) picks the audio streams kept; subtitle streams are kept too.

    ``stop()`` (any thread) ends decoding, finishes the frames in flight and keeps them;
    ``abort()`` ends at once, keeping what is already encoded. Either way the output plays.
    With ``keep_stopped=False`` (batch work, which redoes the file next time) a stopped
    conversion leaves nothing behind instead. A ``KeyboardInterrupt`` on the calling thread
    counts as ``abort("interrupted")``.
    """

    def __init__(
        self,
        source: Path,
        output: Path,
        info: VideoInfo,
        predict: Predict,
        colorizer,
        *,
        audio: str = "all",
        raw: Path | None = None,
        crf: int = 20,
        preset: str = "veryfast",
        fragmented: bool = True,
        keep_damaged: bool = False,
        on_frame: Callable[[], None] | None = None,
        keep_stopped: bool = True,
        temporal=None,
        queue_size: int = QUEUE_SIZE,
        ply: Path | None = None,
        ply_every: int = 1,
        camera: Camera | None = None,
    ) -> None:
        self.source, self.output, self.info = source, output, info
        self.predict, self.colorizer = predict, colorizer
        self.audio, self.raw = audio, raw
        self.crf, self.preset, self.fragmented = crf, preset, fragmented
        self.keep_damaged, self.on_frame, self.keep_stopped = keep_damaged, on_frame, keep_stopped
        self.temporal = temporal
        self.ply, self.ply_every, self.camera = ply, ply_every, camera or Camera()
        self.stages = Stages("conversion")
        self.report = DecodeReport()
        self.times = StageTimes()
        self.pts_span: tuple[int, int] | None = None  # first and last encoded pts
        self._kept: list[int] = []  # the input streams copied besides the video (set with the writers)
        self._decoded: Channel[Frame | av.Packet] = Channel(queue_size)
        self._rendered: Channel[Rendered | av.Packet] = Channel(queue_size)

    def stop(self, reason: str = "stopped") -> None:
        """Finish the frames in flight, then end (thread-safe, idempotent)."""
        self.stages.stop(reason)

    def abort(self, reason: str = "aborted") -> None:
        """End now, keeping the frames already encoded."""
        self.stages.abort(reason)

    @property
    def busy(self) -> bool:
        """Whether a stage thread is still running (after an abort: a forward in flight)."""
        return self.stages.alive

    # --- stages ------------------------------------------------------------------------------

    def _decode(self) -> None:
        items = demux(self.source, self._kept, report=self.report)
        try:
            while not self.stages.stopping:
                t0 = time.perf_counter()
                item = next(items, None)
                self.times.decode += time.perf_counter() - t0
                if item is None or not self._decoded.put(item):
                    return
        finally:
            items.close()

    def _infer(self) -> None:
        for item in self._decoded.items(self.stages.stop_event):
            if isinstance(item, Frame):
                t0 = time.perf_counter()
                depth = self.predict(item.image)
                t1 = time.perf_counter()
                if self.temporal is not None:
                    depth = self.temporal.update(depth, item.image)
                t2 = time.perf_counter()
                image = self.colorizer.render(depth, item.image)
                unit = self.colorizer.unit_depth(depth) if self._wants_cloud(item) else None
                item = Rendered(item, depth, image, unit=unit)
                self.times.infer += t1 - t0
                self.times.filter += t2 - t1
                self.times.render += time.perf_counter() - t2
            if not self._rendered.put(item):
                return

    def _wants_cloud(self, frame: Frame) -> bool:
        return self.ply is not None and frame.index % self.ply_every == 0

    def _end_infer(self) -> None:
        self._decoded.leave()
        self._rendered.finish()

    def _encode(self, writer: VideoWriter, raw: RawDepthWriter | None) -> None:
        """Write every rendered frame, also after ``stop()``: finished work is kept."""
        for item in self._rendered.items(self.stages.abort_event):
            t0 = time.perf_counter()
            if isinstance(item, Rendered):
                pts = item.frame.pts
                writer.write(item.image, pts)
                self.pts_span = (pts if self.pts_span is None else self.pts_span[0], pts)
                if raw is not None:
                    raw.write(item.depth, pts)
                if item.unit is not None:
                    self.camera.save(self.ply / f"{item.frame.index:06d}.ply", item.frame.image, item.unit)
                if self.on_frame is not None:
                    self.on_frame()
            else:
                writer.mux_packet(item)
            self.times.encode += time.perf_counter() - t0

    # --- running -----------------------------------------------------------------------------

    def _open_writers(self) -> tuple[VideoWriter, RawDepthWriter | None]:
        width, height = output_size(self.info, self.colorizer)
        if self.ply is not None:
            self.ply.mkdir(exist_ok=True)
        source = open_input(self.source)  # the kept streams' parameters are copied at once
        try:
            templates = kept_streams(source, self.audio)
            self._kept = [stream.index for stream in templates]
            writer = VideoWriter(partial_path(self.output), width, height, self.info.time_base, self.info.rate,
                                 crf=self.crf, preset=self.preset, fragmented=self.fragmented,
                                 streams=templates, format=muxer(self.output))
        finally:
            source.close()
        raw = None
        if self.raw is not None:
            try:
                raw = RawDepthWriter(self.raw, partial_path(self.raw), self.info.time_base, self.info.rate)
            except BaseException:
                writer.close()
                partial_path(self.output).unlink(missing_ok=True)
                raise
        return writer, raw

    def run(self) -> ConvertResult:
        """Convert; returns at the end of the input or after ``stop()``/``abort()``.

        Raises a one-line :class:`LivedepthError` when a stage failed or nothing was decoded.
        """
        start = time.perf_counter()
        writer, raw = self._open_writers()
        try:
            self.stages.start("decode", self._decode, on_exit=self._decoded.finish)
            self.stages.start("infer", self._infer, on_exit=self._end_infer)
            self._encode(writer, raw)
        except KeyboardInterrupt:
            self.abort("interrupted")
        except Exception as exc:  # noqa: BLE001 - raised below as one line
            self.stages.fail(exc)
        finally:
            self._rendered.leave()
            self.stages.join()
            for closing in (writer, raw):
                try:
                    if closing is not None:
                        closing.close()
                except Exception as exc:  # noqa: BLE001
                    self.stages.fail(exc)
        return self._finish(writer, raw, time.perf_counter() - start)

    @property
    def interrupted(self) -> str | None:
        """Why the run was stopped early (the reason given to ``stop``/``abort``), else None."""
        reason = self.stages.reason
        return None if reason in (None, "end", "error") else reason

    def _video_seconds(self) -> float:
        """Duration of the encoded frames: the pts span plus one average frame."""
        if self.pts_span is None:
            return 0.0
        first, last = self.pts_span
        return float((last - first) * self.info.time_base) + (1 / self.info.fps if self.info.fps > 0 else 0.0)

    def _finish(self, writer: VideoWriter, raw: RawDepthWriter | None, wall: float) -> ConvertResult:
        work = partial_path(self.output)
        frames = writer.frames_written
        keep = False
        try:
            self.stages.raise_error()
            if self.interrupted and not self.keep_stopped:
                return self._result(0, wall, raw)
            if frames == 0:
                if self.interrupted:
                    raise LivedepthError(f"{self.interrupted} before any frame was finished; no output written")
                raise LivedepthError(f"no video frames could be decoded from {self.source}")
            if self.report.damaged and not self.interrupted:
                message = damage_message(self.source, self.report)
                if not self.keep_damaged:
                    raise LivedepthError(f"{message}; no output written (--keep-damaged keeps the decodable frames)")
                log.warning("%s; kept the %d decodable frames", message, frames)
            keep = True
        finally:
            if keep:
                work.replace(self.output)
                if raw is not None:
                    raw.finish()
            else:
                work.unlink(missing_ok=True)
                if raw is not None:
                    raw.discard()
        return self._result(frames, wall, raw)

    def _result(self, frames: int, wall: float, raw: RawDepthWriter | None) -> ConvertResult:
        return ConvertResult(
            frames=frames,
            video_seconds=self._video_seconds() if frames else 0.0,
            wall_seconds=wall,
            output=self.output,
            interrupted=self.interrupted,
            report=self.report,
            times=self.times,
            raw_clipped_pixels=raw.clipped_pixels if raw is not None else 0,
        )


def damage_message(source: Path, report: DecodeReport) -> str:
    """One line about what could not be decoded."""
    parts = [f"{report.skipped} frame(s) skipped"] if report.skipped else []
    if report.read_error:
        parts.append(f"data ends early ({report.read_error})")
    return f"{source} is damaged: decoded {report.decoded} frame(s), {', '.join(parts)}"
