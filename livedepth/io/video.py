"""Video files with PyAV: probing, generator readers and an H.264 mp4 writer that keeps timestamps.

Readers give the upright picture a player shows (see :mod:`livedepth.io.orientation`); the writer
copies the input's audio and subtitle streams (see :mod:`livedepth.io.passthrough`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from livedepth.core.errors import LivedepthError
from livedepth.core.frames import Frame
from livedepth.core.vocab import DEFAULT_FPS, muxer
from livedepth.io.orientation import Orientation, Upright, orientation_of
from livedepth.io.passthrough import KeptStreams

log = logging.getLogger(__name__)

#: mp4 muxer flags: a fragment per keyframe, written (and flushed) as soon as it is complete,
#: so a killed process leaves a file that plays up to its last complete fragment. ``delay_moov``
#: (instead of ``empty_moov``) writes the header with the first fragment, so it can hold an edit
#: list: a video that does not start at pts 0, and audio encoder delay (AAC priming), keep their
#: timestamps.
FRAGMENTED_MOVFLAGS = "frag_keyframe+delay_moov+default_base_moof"
#: Packets :func:`probe` decodes at most to find the first frame (and its display matrix).
_PROBE_PACKETS = 64


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as read from its container; the size is the upright picture's."""

    width: int
    height: int
    fps: float  # average frame rate; 30000/1001 stays 29.97002997...
    time_base: Fraction  # the video stream's time base; pts are in these units
    frame_count: int | None  # from the container header, None when the header does not say
    duration: float | None  # seconds, None when unknown
    codec: str
    audio_codec: str | None  # the first audio stream's codec, None without audio
    orientation: Orientation = Orientation()  # how a player turns the stored picture upright

    @property
    def rate(self) -> Fraction:
        """The average frame rate as an exact fraction (falls back to 1/time_base bounds)."""
        return Fraction(self.fps).limit_denominator(1_000_000) if self.fps > 0 else Fraction(DEFAULT_FPS)


@dataclass
class DecodeReport:
    """How decoding went: frames decoded, packets the decoder rejected, an early end of data."""

    decoded: int = 0
    failed_packets: int = 0
    expected: int | None = None
    read_error: str | None = None

    @property
    def skipped(self) -> int:
        """Frames the file should hold but that could not be decoded (a lower bound)."""
        missing = self.expected - self.decoded if self.expected else 0
        return max(missing, self.failed_packets, 0)

    @property
    def damaged(self) -> bool:
        """True when frames were lost or the data ended early."""
        return self.skipped > 0 or self.read_error is not None


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open a media file for reading, or raise a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise LivedepthError(f"input not found: {path}")
    try:
        return av.open(str(path), "r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise LivedepthError(f"cannot read {path}: not a video file ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


def _video_stream(container: av.container.InputContainer, path: str | Path) -> av.VideoStream:
    if not container.streams.video:
        kind = "audio-only" if container.streams.audio else "no video stream"
        raise LivedepthError(f"no video in {path} ({kind})")
    return container.streams.video[0]


def _info(container: av.container.InputContainer, stream: av.VideoStream) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    orientation = _first_orientation(container, stream)
    width, height = orientation.size(stream.codec_context.width, stream.codec_context.height)
    return VideoInfo(
        width=width,
        height=height,
        fps=float(rate) if rate else 0.0,
        time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000),
        frame_count=stream.frames or None,
        duration=duration,
        codec=stream.codec_context.name,
        audio_codec=audio,
        orientation=orientation,
    )


def _first_orientation(container: av.container.InputContainer, stream: av.VideoStream) -> Orientation:
    """The orientation the first decodable frame carries (see :func:`orientation_of`)."""
    try:
        for count, packet in enumerate(container.demux(stream)):
            frames = stream.decode(packet)
            if frames or count >= _PROBE_PACKETS:
                return orientation_of(frames[0] if frames else None, stream)
    except (av.FFmpegError, EOFError):
        pass
    return orientation_of(None, stream)


def probe(path: str | Path) -> VideoInfo:
    """The :class:`VideoInfo` of a file; a one-line error when it has no video."""
    with open_input(path) as container:
        return _info(container, _video_stream(container, path))


def demux(
    path: str | Path, keep: Sequence[int] = (), report: DecodeReport | None = None
) -> Iterator[Frame | av.Packet]:
    """Yield decoded upright video frames and the packets of the streams numbered ``keep``, in file order.

    Packets the decoder rejects are counted in ``report.failed_packets`` and skipped; a read
    error (damaged data) flushes the decoder, stops, and sets ``report.read_error``. Frames without a pts, or with
    a pts not after the previous one, get the previous pts plus one (logged once).
    """
    report = report if report is not None else DecodeReport()
    with open_input(path) as container:
        video = _video_stream(container, path)
        video.thread_type = "AUTO"
        report.expected = video.frames or None
        streams = [video, *(s for s in container.streams if s.index in keep and s is not video)]
        upright = Upright(video, path)
        last_pts: int | None = None
        fixed = False
        packets = container.demux(*streams)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.FFmpegError, EOFError) as exc:
                report.read_error = _reason(exc)
                packet = None  # flush the frames the decoder still holds, then stop
            if packet is not None and packet.stream is not video:
                if packet.size:
                    yield packet
                continue
            try:
                frames = video.codec_context.decode(packet if packet is not None and packet.size else None)
            except av.FFmpegError:
                report.failed_packets += 1
                frames = []
            for frame in frames:
                pts = frame.pts
                if pts is None or (last_pts is not None and pts <= last_pts):
                    pts = 0 if last_pts is None else last_pts + 1
                    if not fixed:
                        log.warning("%s: missing or non-increasing frame timestamps; numbering them", path)
                        fixed = True
                last_pts = pts
                yield Frame(upright(frame), report.decoded, time.monotonic(), pts)
                report.decoded += 1
            if report.read_error is not None:
                break


def sample_frames(path: str | Path, count: int = 8) -> list[np.ndarray]:
    """Up to ``count`` upright BGR frames spread evenly over a video (by seeking; int8 calibration)."""
    with open_input(path) as container:
        stream = _video_stream(container, path)
        upright = Upright(stream, path)
        duration = stream.duration or (container.duration and container.duration / av.time_base / stream.time_base)
        frames: list[np.ndarray] = []
        for i in range(count):
            target = int((stream.start_time or 0) + (duration or 0) * i / count)
            container.seek(target, stream=stream)  # to the keyframe before, then decode up to the target
            frame = next((f for f in container.decode(stream) if f.pts is None or f.pts >= target), None)
            if frame is not None:
                frames.append(upright(frame))
    return frames


def read_frames(path: str | Path) -> Iterator[Frame]:
    """Yield every decodable video frame of ``path`` (upright BGR uint8) with its pts."""
    yield from demux(path)  # type: ignore[misc]


#: VideoWriter's BGR -> yuv420p conversion: BT.709 matrix, limited (16-235) range, rounded (not
#: truncated: 1 level darker). Left to its defaults, ``reformat`` uses BT.601 and the stream says
#: nothing, so players have to guess.
_TO_YUV = {
    "format": "yuv420p",
    "dst_colorspace": av.video.reformatter.Colorspace.ITU709,
    "dst_color_range": av.video.reformatter.ColorRange.MPEG,
    "interpolation": av.video.reformatter.Interpolation.BILINEAR | av.video.reformatter.Interpolation.ACCURATE_RND,
}
#: AVCOL_SPC_BT709, the codec context's tag for that matrix (PyAV's ``Colorspace`` holds swscale's values).
_AVCOL_SPC_BT709 = 1


class VideoWriter:
    """H.264 yuv420p video (mp4 by default) that keeps the caller's ``time_base`` and ``pts``.

    The mp4 is fragmented by default (a fragment per keyframe, about one per second, flushed
    at once) so a killed process leaves a playable file. B-frames are off, so every frame's
    pts is written as given and reads back unchanged. Odd sizes are padded by one pixel of
    black on the right/bottom, because yuv420p needs even sizes. ``streams`` are input audio and
    subtitle streams (:func:`~livedepth.io.passthrough.kept_streams`): their packets, passed to
    :meth:`mux_packet`, are copied unchanged, or re-encoded when the container cannot carry the
    codec (:class:`~livedepth.io.passthrough.KeptStreams`). Colours are converted as BT.709 limited
    range (:data:`_TO_YUV`) and the stream is tagged so, with BT.709 (sRGB's) primaries and transfer.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        time_base: Fraction,
        rate: Fraction | float,
        *,
        codec: str = "libx264",
        crf: int = 20,
        preset: str = "veryfast",
        fragmented: bool = True,
        streams: Sequence[av.stream.Stream] = (),
        format: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.width, self.height = width, height
        self.frames_written = 0
        self._closed = False
        self._last_pts: int | None = None
        self._pad = (width % 2, height % 2)
        if any(self._pad):
            log.info("padding %dx%d to %dx%d with black (yuv420p needs even sizes)",
                     width, height, width + self._pad[0], height + self._pad[1])
        time_base = self._time_base = Fraction(time_base)
        rate = Fraction(rate).limit_denominator(1_000_000) if rate else Fraction(DEFAULT_FPS)
        fmt = format or muxer(self.path)
        options: dict[str, str] = {}
        if fmt in ("mp4", "mov") and fragmented and any(stream.type == "subtitle" for stream in streams):
            # FFmpeg's mp4 muxer aborts the process when a fragment ends inside a subtitle.
            log.info("the output is written unfragmented because it carries subtitles (a killed run leaves "
                     "no playable file; a stopped one does)")
            fragmented = False
        if fmt in ("mp4", "mov"):
            options["avoid_negative_ts"] = "disabled"  # keep pts as given (an edit list handles offsets)
            if fragmented:
                options.update(movflags=FRAGMENTED_MOVFLAGS, flush_packets="1")
            if time_base.numerator == 1:
                options["video_track_timescale"] = str(time_base.denominator)
        try:
            self._container = av.open(str(self.path), "w", format=fmt, options=options)
        except (av.FFmpegError, OSError) as exc:
            raise LivedepthError(f"cannot write {self.path}: {_reason(exc)}") from None
        try:
            gop = max(1, round(float(rate)))
            self._video = self._container.add_stream(codec, rate=rate)
            self._video.width = width + self._pad[0]
            self._video.height = height + self._pad[1]
            self._video.pix_fmt = "yuv420p"
            self._video.time_base = time_base
            self._video.codec_context.time_base = time_base
            self._video.codec_context.gop_size = gop
            self._video.codec_context.max_b_frames = 0
            self._video.codec_context.colorspace = _AVCOL_SPC_BT709
            self._video.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
            self._video.codec_context.color_primaries = av.video.reformatter.ColorPrimaries.BT709
            self._video.codec_context.color_trc = av.video.reformatter.ColorTrc.BT709
            if codec == "libx264":
                self._video.options = {"crf": str(crf), "preset": preset, "bf": "0"}
            self._kept = KeptStreams(self._container, streams, fmt)
        except BaseException:
            self._container.close()
            raise

    def write(self, image_bgr: np.ndarray, pts: int) -> None:
        """Encode one BGR uint8 frame at ``pts`` (``time_base`` units, strictly increasing)."""
        if image_bgr.shape[:2] != (self.height, self.width):
            got = f"{image_bgr.shape[1]}x{image_bgr.shape[0]}"
            raise ValueError(f"frame is {got}, writer is {self.width}x{self.height}")
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts must increase: {pts} after {self._last_pts}")
        if any(self._pad):
            image_bgr = np.pad(image_bgr, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image_bgr), format="bgr24")
        frame = frame.reformat(**_TO_YUV)
        frame.pts = pts
        frame.time_base = self._time_base  # the caller's: a muxer may change the stream's (Matroska: 1 ms)
        self._container.mux(self._video.encode(frame))
        self._last_pts = pts
        self.frames_written += 1

    def mux_packet(self, packet: av.Packet) -> None:
        """Copy (or re-encode) one packet of an input stream given as ``streams``."""
        self._kept.mux(packet)

    def close(self) -> None:
        """Flush the encoders and close the file (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._video.encode(None))
            self._kept.flush()
        finally:
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
