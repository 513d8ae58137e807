"""livedepth.io.video: probing, readers and the timestamp-keeping H.264 writer, read back with PyAV."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest
from support.clips import audio_packet_times, audio_packets, decoded_pts, frame_image, make_audio_only, make_clip

from livedepth.core.errors import LivedepthError
from livedepth.core.frames import Frame
from livedepth.io.passthrough import kept_streams
from livedepth.io.rawdepth import DepthScale
from livedepth.io.video import VideoWriter, demux, probe, read_frames


def _copy(src, dst, **kwargs) -> None:
    """Re-encode ``src`` through VideoWriter with its own time base, pts, audio and subtitles."""
    info = probe(src)
    with av.open(str(src)) as inp:
        templates = kept_streams(inp)
        with VideoWriter(dst, info.width, info.height, info.time_base, info.rate,
                         streams=templates, **kwargs) as writer:
            for item in demux(src, [stream.index for stream in templates]):
                if isinstance(item, Frame):
                    writer.write(item.image, item.pts)
                else:
                    writer.mux_packet(item)


def test_probe_reports_exact_rate_and_count(tmp_path):
    src = tmp_path / "ntsc.mp4"
    make_clip(src, frames=10, rate=Fraction(30000, 1001))
    info = probe(src)
    assert (info.width, info.height, info.frame_count) == (64, 48, 10)
    assert info.time_base == Fraction(1, 30000)
    assert info.rate == Fraction(30000, 1001)
    assert isinstance(info.fps, float) and abs(info.fps - 29.97002997) < 1e-6
    assert info.audio_codec == "aac"


@pytest.mark.parametrize(
    "rate, time_base, durations, audio, suffix, start",
    [
        (Fraction(30000, 1001), None, None, "aac", ".mp4", 0),
        (Fraction(24000, 1001), None, None, "libmp3lame", ".mp4", 0),
        (Fraction(25), Fraction(1, 1000), [33, 50, 17, 120], "aac", ".mkv", 0),  # variable frame rate
        (Fraction(25), Fraction(1, 1000), [40], "aac", ".mkv", 1234),  # video starts at 1.234 s
    ],
)
def test_writer_keeps_every_pts_and_copies_audio(tmp_path, rate, time_base, durations, audio, suffix, start):
    src = tmp_path / f"in{suffix}"
    make_clip(src, frames=16, rate=rate, time_base=time_base, durations=durations, audio=audio, start_pts=start)
    dst = tmp_path / "out.mp4"
    _copy(src, dst)
    src_times, n_src = decoded_pts(src)
    out_times, n_out = decoded_pts(dst)
    assert n_out == n_src == 16
    assert out_times == src_times  # exact fractions: every output pts maps to the input pts
    assert probe(dst).time_base == probe(src).time_base
    assert audio_packets(dst) == audio_packets(src) and audio_packets(src)
    # audio keeps its timing too, incl. a negative start (AAC priming); Matroska rounds to 1 ms
    src_audio, dst_audio = audio_packet_times(src), audio_packet_times(dst)
    assert src_audio[0] < 0 and len(dst_audio) == len(src_audio)
    assert max(abs(a - b) for a, b in zip(src_audio, dst_audio, strict=True)) <= Fraction(1, 1000)
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_unfragmented_mp4_keeps_timing_too(tmp_path):
    src = tmp_path / "late.mkv"
    make_clip(src, frames=8, rate=Fraction(25), time_base=Fraction(1, 1000), durations=[40, 45], start_pts=500)
    dst = tmp_path / "plain.mp4"
    _copy(src, dst, fragmented=False)
    assert decoded_pts(dst) == decoded_pts(src)
    assert audio_packets(dst) == audio_packets(src)


def test_writer_pads_odd_sizes_with_black(tmp_path, caplog):
    dst = tmp_path / "odd.mp4"
    image = np.full((47, 65, 3), 200, np.uint8)
    with caplog.at_level("INFO"), VideoWriter(dst, 65, 47, Fraction(1, 10), 10) as writer:
        for i in range(3):
            writer.write(image, i)
    assert "padding 65x47 to 66x48" in caplog.text
    frames = list(read_frames(dst))
    assert len(frames) == 3 and frames[0].image.shape == (48, 66, 3)
    assert frames[0].image[:47, :65].mean() > 190 and frames[0].image[47:, :].mean() < 30


def test_writer_reencodes_audio_the_container_cannot_carry(tmp_path, caplog):
    src = tmp_path / "pcm.mkv"  # mp4 has no tag for 8-bit PCM
    make_clip(src, frames=10, audio="pcm_u8", codec="ffv1")
    dst = tmp_path / "out.mp4"
    with caplog.at_level("WARNING"):
        _copy(src, dst)
    assert "re-encoding it to AAC" in caplog.text
    assert probe(dst).audio_codec == "aac" and len(audio_packets(dst)) > 5
    assert decoded_pts(dst)[1] == 10


def test_writer_rejects_non_increasing_pts_and_wrong_size(tmp_path):
    with VideoWriter(tmp_path / "x.mp4", 64, 48, Fraction(1, 25), 25) as writer:
        writer.write(frame_image(0, 64, 48), 5)
        with pytest.raises(ValueError, match="pts must increase"):
            writer.write(frame_image(1, 64, 48), 5)
        with pytest.raises(ValueError, match="writer is 64x48"):
            writer.write(frame_image(1, 32, 48), 6)
        writer.close()
        writer.close()  # idempotent
    assert decoded_pts(tmp_path / "x.mp4")[1] == 1


def test_fragmented_file_decodes_when_cut_short(tmp_path):
    """What a killed process leaves: the file up to some byte still plays its complete fragments."""
    dst = tmp_path / "frag.mp4"
    with VideoWriter(dst, 64, 48, Fraction(1, 10), 10) as writer:
        for i in range(40):
            writer.write(frame_image(i, 64, 48), i)
    data = dst.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    frames = list(read_frames(cut))
    assert 10 <= len(frames) < 40
    assert [f.pts for f in frames] == list(range(len(frames)))


def test_readers_are_generators_that_close(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, frames=8, audio=None)
    open_files = len(os.listdir("/proc/self/fd"))
    gen = read_frames(src)
    first = next(gen)
    assert first.index == 0 and first.image.dtype == np.uint8 and first.image.shape == (48, 64, 3)
    assert len(os.listdir("/proc/self/fd")) > open_files, "the file is open while the generator runs"
    gen.close()
    assert len(os.listdir("/proc/self/fd")) == open_files, "closing the generator closes the file"
    with pytest.raises(StopIteration):
        next(gen)


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(LivedepthError, match="input not found"):
        probe(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 10)
    with pytest.raises(LivedepthError, match="not a video"):
        probe(text)
    audio = tmp_path / "song.m4a"
    make_audio_only(audio)
    with pytest.raises(LivedepthError, match="audio-only"):
        probe(audio)


def test_truncated_file_reports_skipped_frames(tmp_path):
    src = tmp_path / "whole.mp4"
    make_clip(src, frames=30, audio=None, options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    from livedepth.io.video import DecodeReport

    report = DecodeReport()
    frames = [item for item in demux(cut, report=report)]
    assert report.expected == 30 and report.decoded == len(frames) < 30
    assert report.damaged and report.skipped == 30 - len(frames)


def test_depth_scale_round_trip_within_one_step():
    rng = np.random.default_rng(0)
    first = rng.uniform(2.0, 9.0, (48, 64)).astype(np.float32)
    scale = DepthScale.from_first_frame(first)
    later = rng.uniform(-4.0, 15.0, (48, 64)).astype(np.float32)  # inside the headroom
    values, clipped = scale.encode(later)
    assert values.dtype == np.uint16 and clipped == 0
    assert np.abs(scale.decode(values) - later).max() <= scale.step / 2 + 1e-6
    _, clipped = scale.encode(np.array([[100.0, -100.0, np.nan]], np.float32))
    assert clipped == 3
