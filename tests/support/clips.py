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
