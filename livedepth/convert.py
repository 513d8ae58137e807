"""Video -> depth video: decode, inference and encode threads joined by bounded queues.

No frame is dropped: each queue holds a few items and a full queue blocks its producer, so
memory stays bounded whatever the video's length. Audio packets travel through the same
queues in file order and are muxed by the encode stage. Every stage sends a sentinel in
``finally``; an error or a stop request in any stage stops the others.
"""

from __future__ import annotations

import copy
import logging
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livedepth.errors import LivedepthError
from livedepth.rawdepth import RawDepthWriter
from livedepth.video import DecodedFrame, DecodeReport, VideoInfo, VideoWriter, demux, open_input

log = logging.getLogger(__name__)

_END = object()  # sentinel closing a queue
QUEUE_SIZE = 8


@dataclass
class StageTimes:
    """Seconds spent in each stage's work (not waiting on queues)."""

    decode: float = 0.0
    infer: float = 0.0
    render: float = 0.0
    encode: float = 0.0


@dataclass
class ConvertResult:
    """What a conversion did."""

    frames: int
    video_seconds: float
    wall_seconds: float
    output: Path
    interrupted: str | None  # signal name when stopped by SIGINT/SIGTERM
    report: DecodeReport
    times: StageTimes = field(default_factory=StageTimes)
    raw_clipped_pixels: int = 0


@dataclass
class _Rendered:
    pts: int
    image: np.ndarray
    depth: np.ndarray


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

    ``predict`` maps a BGR frame to float32 depth (``DepthEstimator.predict``). The output is
    written as :func:`partial_path` and renamed when complete (or interrupted).
    """

    def __init__(
        self,
        source: Path,
        output: Path,
        info: VideoInfo,
        predict: Callable[[np.ndarray], np.ndarray],
        colorizer,
        *,
        audio: bool = True,
        raw: Path | None = None,
        crf: int = 20,
        preset: str = "veryfast",
        fragmented: bool = True,
        keep_damaged: bool = False,
        progress: bool = False,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.source, self.output, self.info = source, output, info
        self.predict, self.colorizer = predict, colorizer
        self.audio, self.raw = audio, raw
        self.crf, self.preset, self.fragmented = crf, preset, fragmented
        self.keep_damaged, self.progress = keep_damaged, progress
        self.stop = threading.Event()
        self.interrupted: str | None = None
        self.errors: list[BaseException] = []
        self.report = DecodeReport()
        self.times = StageTimes()
        self.encoded = 0
        self.pts_span: tuple[int, int] | None = None  # first and last encoded pts
        self._decoded_q: queue.Queue = queue.Queue(queue_size)
        self._rendered_q: queue.Queue = queue.Queue(queue_size)
        self._infer_done = threading.Event()
        self._encode_done = threading.Event()

    # --- queue helpers -----------------------------------------------------------------------

    @staticmethod
    def _put(q: queue.Queue, item: object, consumer_done: threading.Event) -> bool:
        """Blocking put (a full queue pushes back); False once the consumer has exited."""
        while not consumer_done.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()

    # --- stages ------------------------------------------------------------------------------

    def _decode(self) -> None:
        try:
            items = demux(self.source, audio=self.audio, report=self.report)
            while not self.stop.is_set():
                t0 = time.perf_counter()
                item = next(items, _END)
                self.times.decode += time.perf_counter() - t0
                if item is _END or not self._put(self._decoded_q, item, self._infer_done):
                    break
            items.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._fail(exc)
        finally:
            self._put(self._decoded_q, _END, self._infer_done)

    def _infer(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    item = self._decoded_q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _END:
                    break
                if isinstance(item, DecodedFrame):
                    t0 = time.perf_counter()
                    depth = self.predict(item.image)
                    t1 = time.perf_counter()
                    image = self.colorizer.render(depth, item.image)
                    self.times.infer += t1 - t0
                    self.times.render += time.perf_counter() - t1
                    item = _Rendered(item.pts, image, depth)
                if not self._put(self._rendered_q, item, self._encode_done):
                    break
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
        finally:
            self._infer_done.set()
            self._put(self._rendered_q, _END, self._encode_done)

    def _encode(self, writer: VideoWriter, raw: RawDepthWriter | None) -> None:
        """Drains every rendered frame, also after a stop request: finished work is kept."""
        try:
            while True:
                try:
                    item = self._rendered_q.get(timeout=0.1)
                except queue.Empty:
                    if self._infer_done.is_set() and self._rendered_q.empty():
                        break
                    continue
                if item is _END:
                    break
                t0 = time.perf_counter()
                if isinstance(item, _Rendered):
                    writer.write(item.image, item.pts)
                    self.pts_span = (item.pts if self.pts_span is None else self.pts_span[0], item.pts)
                    if raw is not None:
                        raw.write(item.depth, item.pts)
                    self.encoded += 1
                else:
                    writer.mux_audio(item)
                self.times.encode += time.perf_counter() - t0
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
        finally:
            self._encode_done.set()
            try:
                writer.close()
                if raw is not None:
                    raw.close()
            except BaseException as exc:  # noqa: BLE001
                self._fail(exc)

    # --- running -----------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.interrupted is None:
            self.interrupted = signal.Signals(signum).name
            log.warning("%s: finishing the frames in flight and closing %s", self.interrupted, self.output)
        self.stop.set()

    def _open_writers(self) -> tuple[VideoWriter, RawDepthWriter | None]:
        width, height = output_size(self.info, self.colorizer)
        template = None
        source = open_input(self.source)  # the audio template's parameters are copied at once
        try:
            if self.audio and source.streams.audio:
                template = source.streams.audio[0]
            writer = VideoWriter(partial_path(self.output), width, height, self.info.time_base, self.info.rate,
                                 crf=self.crf, preset=self.preset, fragmented=self.fragmented,
                                 audio_template=template, format=_muxer(self.output))
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
        """Convert; returns when the input ends, on SIGINT/SIGTERM, or raises on an error."""
        start = time.perf_counter()
        writer, raw = self._open_writers()
        threads = [
            threading.Thread(target=self._decode, name="decode", daemon=True),
            threading.Thread(target=self._infer, name="infer", daemon=True),
            threading.Thread(target=self._encode, args=(writer, raw), name="encode", daemon=True),
        ]
        handlers = self._install_signal_handlers()
        try:
            for thread in threads:
                thread.start()
            self._wait(threads)
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        wall = time.perf_counter() - start
        return self._finish(writer, raw, wall)

    def _install_signal_handlers(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        handlers = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            handlers[signum] = signal.signal(signum, self._on_signal)
        return handlers

    def _wait(self, threads: list[threading.Thread]) -> None:
        from tqdm import tqdm

        with tqdm(total=self.info.frame_count, unit="frame", desc="convert", disable=not self.progress,
                  dynamic_ncols=True, leave=False) as bar:
            while any(t.is_alive() for t in threads):
                threads[-1].join(0.1)
                bar.update(self.encoded - bar.n)

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
            if self.errors:
                exc = self.errors[0]
                if isinstance(exc, LivedepthError):
                    raise exc
                raise LivedepthError(f"conversion failed: {type(exc).__name__}: {exc}") from exc
            if frames == 0:
                if self.interrupted:
                    raise LivedepthError(f"{self.interrupted.lower()} before any frame was finished; "
                                         "no output written")
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
        return ConvertResult(
            frames=frames,
            video_seconds=self._video_seconds(),
            wall_seconds=wall,
            output=self.output,
            interrupted=self.interrupted,
            report=self.report,
            times=self.times,
            raw_clipped_pixels=raw.clipped_pixels if raw is not None else 0,
        )


def _muxer(path: Path) -> str:
    return {".mov": "mov", ".mkv": "matroska"}.get(path.suffix.lower(), "mp4")


def damage_message(source: Path, report: DecodeReport) -> str:
    """One line about what could not be decoded."""
    parts = [f"{report.skipped} frame(s) skipped"] if report.skipped else []
    if report.read_error:
        parts.append(f"data ends early ({report.read_error})")
    return f"{source} is damaged: decoded {report.decoded} frame(s), {', '.join(parts)}"


def check_outputs(source: Path, output: Path, raw: Path | None, overwrite: bool) -> None:
    """One-line errors for outputs that cannot or must not be written."""
    targets = [output] + ([raw] if raw is not None else [])
    for path in targets:
        if path.resolve() == source.resolve():
            raise LivedepthError(f"output {path} is the input")
        folder = path.parent
        if not folder.is_dir():
            raise LivedepthError(f"output folder does not exist: {folder}")
        if not _writable(folder):
            raise LivedepthError(f"output folder is not writable: {folder}")
        for candidate in (path, partial_path(path)):
            if candidate.exists() and not overwrite:
                raise LivedepthError(f"{candidate} exists; use --overwrite to replace it")
    if raw is not None:
        if raw.suffix.lower() != ".mkv" and raw.suffix:
            raise LivedepthError(f"--raw takes a .mkv file or a folder name without an extension, got {raw}")
        if raw.is_dir() and any(raw.iterdir()) and not (raw / "depth.json").is_file():
            raise LivedepthError(f"--raw folder {raw} is not empty and is not a livedepth export")
    if output.is_dir():
        raise LivedepthError(f"output {output} is a folder; name a video file")
    if output.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise LivedepthError(f"output must be .mp4, .mov or .mkv, got {output.name}")


def _writable(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (permission bits do not bind root)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def summary_line(result: ConvertResult) -> str:
    """``converted N frames (D s of video) in W s: F frames/s (Xx real time) -> OUT``."""
    fps = result.frames / result.wall_seconds if result.wall_seconds > 0 else 0.0
    speed = result.video_seconds / result.wall_seconds if result.wall_seconds > 0 else 0.0
    return (f"converted {result.frames} frames ({result.video_seconds:.2f} s of video) in "
            f"{result.wall_seconds:.2f} s: {fps:.1f} frames/s ({speed:.2f}x real time) -> {result.output}")


def progress_enabled(quiet: bool) -> bool:
    """Progress bars only on an interactive stderr and without --quiet."""
    return not quiet and sys.stderr.isatty()

