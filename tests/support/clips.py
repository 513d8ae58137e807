"""Small synthetic video clips made with PyAV for the video and convert tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frame_image(i: int, width: int, height: int) -> np.ndarray:
    """A BGR frame with a moving bright square on a gradient, different for every ``i``."""
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)),
                      np.full_like(xx, (i * 37) % 256)], axis=-1).astype(np.uint8)
    s = max(4, min(width, height) // 4)
    x0 = (i * 3) % max(width - s, 1)
    image[height // 4: height // 4 + s, x0: x0 + s] = 255
    return image


def make_clip(
    path: Path,
    frames: int = 12,
    width: int = 64,
    height: int = 48,
    rate: Fraction = Fraction(30000, 1001),
    *,
    time_base: Fraction | None = None,
    durations: list[int] | None = None,
    audio: str | None = "aac",
    codec: str = "libx264",
    start_pts: int = 0,
    options: dict[str, str] | None = None,
) -> list[int]:
    """Write a clip and return the pts of its frames.

    ``time_base`` defaults to ``1/rate``; ``durations`` (in time_base units, cycled) gives a
    variable frame rate. ``audio`` is an encoder name (aac, libmp3lame, pcm_u8, ...) or None.
    """
    time_base = time_base or 1 / rate
    pts_list = []
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream(codec, rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p" if codec in ("libx264", "mpeg4") else "yuv444p"
        video.time_base = time_base
        video.codec_context.time_base = time_base
        sound = None
        if audio:
            sound = out.add_stream(audio, rate=44100)
            sound.layout = "mono"
        pts, sample = start_pts, 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="bgr24")
            frame.pts = pts
            pts_list.append(pts)
            out.mux(video.encode(frame))
            pts += durations[i % len(durations)] if durations else 1
            while sound is not None and sample < float(pts * time_base) * 44100:
                _mux_audio(out, sound, sample)
                sample += 1024
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return pts_list


def live_clip(path: Path, frames: int, fps: float, size: tuple[int, int] = (160, 120)) -> Path:
    """A silent H.264 clip for the live tests (a moving square on a gradient); returns ``path``."""
    make_clip(path, frames, *size, Fraction(fps).limit_denominator(1001), audio=None)
    return path


def _mux_audio(out, sound, sample: int) -> None:
    rng = np.random.default_rng(sample)
    fmt = {"pcm_s16le": "s16", "pcm_u8": "u8"}.get(sound.codec_context.name, "fltp")
    if fmt == "s16":
        data = rng.integers(-3000, 3000, (1, 1024), dtype=np.int16)
    elif fmt == "u8":
        data = rng.integers(100, 156, (1, 1024), dtype=np.uint8)
    else:
        data = rng.uniform(-0.1, 0.1, (1, 1024)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
    frame.sample_rate = 44100
    frame.pts = sample
    out.mux(sound.encode(frame))


def make_audio_only(path: Path, seconds: float = 0.5) -> None:
    """An AAC .m4a with no video stream."""
    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=44100)
        sound.layout = "mono"
        for sample in range(0, int(seconds * 44100), 1024):
            _mux_audio(out, sound, sample)
        out.mux(sound.encode(None))


def make_empty_video(path: Path) -> None:
    """An mp4 with a video stream but no frames."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()


def decoded_pts(path: Path) -> tuple[list[Fraction], int]:
    """Every decoded video frame's time in seconds (exact), and the frame count."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [Fraction(f.pts) * Fraction(stream.time_base) for f in container.decode(stream)]
    return times, len(times)


def frames_in_growing_file(path: Path) -> int:
    """Frames decodable from a snapshot of a file that may still be growing."""
    if not path.is_file():
        return 0
    snapshot = path.with_name("snapshot.mp4")
    snapshot.write_bytes(path.read_bytes())
    try:
        return decoded_pts(snapshot)[1]
    except Exception:  # noqa: BLE001 - not yet a readable file
        return 0
    finally:
        snapshot.unlink(missing_ok=True)


def audio_packet_times(path: Path) -> list[Fraction]:
    """The exact time of every packet of the first audio stream, in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [Fraction(p.pts) * Fraction(stream.time_base) for p in container.demux(stream) if p.size]


def audio_packets(path: Path) -> list[bytes]:
    """The bytes of every packet of the first audio stream."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


#: The files of :func:`make_library` that convert (the rest: a corrupt video and a text file).
GOOD = ("ntsc.mp4", "sub/vfr.mkv", "sub/deeper/odd.mkv")


def make_library(root: Path) -> Path:
    """A folder of clips: NTSC rate with AAC, variable frame rate with MP3, an odd size, a
    corrupt file and a text file."""
    (root / "sub" / "deeper").mkdir(parents=True)
    make_clip(root / "ntsc.mp4", frames=12, rate=Fraction(30000, 1001), audio="aac")
    make_clip(root / "sub" / "vfr.mkv", frames=10, rate=Fraction(25), time_base=Fraction(1, 1000),
              durations=[33, 50, 17, 120], audio="libmp3lame")
    make_clip(root / "sub" / "deeper" / "odd.mkv", frames=8, width=63, height=47, codec="ffv1", audio="aac")
    (root / "broken.mp4").write_bytes((root / "ntsc.mp4").read_bytes()[:2500])
    (root / "notes.txt").write_text("not a video")
    return root


def stored_picture(upright: np.ndarray, counter_clockwise: int, mirror: bool) -> np.ndarray:
    """The picture to store so that a player showing it turned ``counter_clockwise`` degrees, then
    mirrored left to right (FFmpeg's display matrix, as PyAV's ``set_display_rotation`` sets
    it), shows ``upright``."""
    return np.ascontiguousarray(np.rot90(np.fliplr(upright) if mirror else upright, k=-counter_clockwise // 90))


def make_oriented_clip(path: Path, upright: list[np.ndarray], counter_clockwise: int = 0, mirror: bool = False,
                       *, matrix: bool = True, rotate_tag: str | None = None) -> Path:
    """A clip whose frames a player shows as ``upright`` (BGR): the pictures are stored turned
    back, with a display matrix (``matrix``) and/or a legacy ``rotate`` tag saying how to show them.

    ``.mkv`` is FFV1 in BGR, ``.mp4`` is lossless H.264 4:4:4 (a phone's codec): either way
    the decoded pictures are exact, so two clips of the same pictures decode to the same frames.
    """
    mkv = path.suffix == ".mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1" if mkv else "libx264", rate=25)
        height, width = stored_picture(upright[0], counter_clockwise, mirror).shape[:2]
        video.width, video.height, video.pix_fmt = width, height, "bgr0" if mkv else "yuv444p"
        if not mkv:
            video.options = {"qp": "0"}
        if matrix:
            video.set_display_rotation(counter_clockwise, hflip=mirror)
        if rotate_tag is not None:
            video.metadata["rotate"] = rotate_tag
        for i, image in enumerate(upright):
            frame = av.VideoFrame.from_ndarray(stored_picture(image, counter_clockwise, mirror), format="bgr24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def corner_pattern(width: int, height: int, i: int = 0) -> np.ndarray:
    """A BGR picture that is bright in its top-left quadrant only (plus a faint per-frame shade)."""
    image = np.full((height, width, 3), 20 + 3 * i, np.uint8)
    image[: height // 2, : width // 2] = 235
    return image


def quadrant_means(image: np.ndarray) -> list[float]:
    """Mean brightness of the top-left, top-right, bottom-left and bottom-right quadrants."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    return [float(image[rows, cols].mean()) for rows in (slice(0, h), slice(h, 2 * h))
            for cols in (slice(0, w), slice(w, 2 * w))]


#: A minimal ASS header: what text subtitle encoders start from.
_ASS_HEADER = (b"[Script Info]\r\nScriptType: v4.00+\r\nPlayResX: 384\r\nPlayResY: 288\r\n\r\n[V4+ Styles]\r\n"
               b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
               b"Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
               b"Alignment, MarginL, MarginR, MarginV, Encoding\r\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,"
               b"&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\r\n\r\n[Events]\r\nFormat: Layer, Start, End, Style, "
               b"Name, MarginL, MarginR, MarginV, Effect, Text\r\n")
#: (start, end) in ms and text of the subtitles :func:`make_film` writes.
SUBTITLES = [(80, 380, "Hello"), (480, 780, "World, again")]


def make_film(path: Path, audio: list[tuple[str, str, str]], subtitles: list[tuple[str, str, str]],
              frames: int = 25) -> None:
    """A 25 fps H.264 clip with audio tracks and subtitle tracks, each ``(codec, language, title)``.

    Text subtitle codecs get :data:`SUBTITLES`; a bitmap one (dvb_subtitle) gets opaque packets.
    """
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sounds, texts = [], []
        for codec, language, title in audio:
            sound = out.add_stream(codec, rate=48000)
            sound.layout = "stereo"
            sounds.append(sound)
        for codec, language, title in subtitles:
            text = out.add_stream(codec)
            text.time_base = text.codec_context.time_base = Fraction(1, 1000)
            if codec != "dvb_subtitle":
                text.codec_context.subtitle_header = _ASS_HEADER
            texts.append(text)
        for stream, (_, language, title) in zip(sounds + texts, audio + subtitles, strict=True):
            stream.metadata.update(language=language, title=title)
        samples = [0] * len(sounds)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, 64, 48), format="bgr24")
            frame.pts = i
            out.mux(video.encode(frame))
            for k, sound in enumerate(sounds):
                while samples[k] < (i + 1) * 48000 // 25:
                    size = sound.codec_context.frame_size or 1024
                    data = np.random.default_rng(samples[k]).uniform(-0.1, 0.1, (2, size)).astype(np.float32)
                    chunk = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
                    chunk.sample_rate, chunk.pts = 48000, samples[k]
                    for converted in av.AudioResampler(sound.format, "stereo", 48000).resample(chunk):  # e.g. u8
                        out.mux(sound.encode(converted))
                    samples[k] += size
            for start, end, words in SUBTITLES:
                if i * 40 <= start < (i + 1) * 40:
                    for text in texts:
                        _mux_subtitle(out, text, start, end, words)
        out.mux(video.encode(None))
        for sound in sounds:
            out.mux(sound.encode(None))


def _mux_subtitle(out, stream, start: int, end: int, words: str) -> None:
    if stream.codec_context.name == "dvb_subtitle":
        packet = av.Packet(bytes([0x20, 0x00, 0x0F, 0x10]) + words.encode())
    else:
        cue = av.subtitles.subtitle.SubtitleSet.create(f"0,0,Default,,0,0,0,,{words}".encode(), 0, end - start)
        packet = stream.codec_context.encode_subtitle(cue)
    packet.stream, packet.time_base = stream, Fraction(1, 1000)
    packet.pts = packet.dts = start
    packet.duration = end - start
    out.mux(packet)
