"""VideoWriter's colour: BT.709 limited-range yuv420p, tagged so, and decoded back to the colours written."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from livedepth.io.video import VideoWriter, read_frames

#: Flat RGB patches, 64x64 each so that 4:2:0 chroma is exact at their centres.
PATCHES = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (200, 120, 40), (40, 80, 150)]
SIZE = 64
#: What a lossless (crf 0) round trip may cost: the 8-bit RGB -> YUV -> RGB rounding (2 levels at
#: worst; a truncating conversion loses 4).
TOLERANCE = 3
#: AVCOL_SPC_BT709 / AVCOL_SPC_SMPTE170M (BT.601): a stream's matrix tag.
BT709, BT601 = 1, 6
MPEG = av.video.reformatter.ColorRange.MPEG


def _image_bgr() -> np.ndarray:
    image = np.zeros((SIZE, SIZE * len(PATCHES), 3), np.uint8)
    for i, rgb in enumerate(PATCHES):
        image[:, i * SIZE:(i + 1) * SIZE] = rgb[::-1]
    return image


def _centres(image: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in image[SIZE // 2, i * SIZE + SIZE // 2]) for i in range(len(PATCHES))]


def _write(path: Path) -> Path:
    image = _image_bgr()
    with VideoWriter(path, image.shape[1], image.shape[0], Fraction(1, 25), 25, crf=0) as writer:
        writer.write(image, 0)
    return path


def _decode(path: Path) -> tuple[av.VideoFrame, av.video.codeccontext.VideoCodecContext]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return next(container.decode(stream)), stream.codec_context


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    plane = frame.planes[index]
    return np.frombuffer(bytes(plane), np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]


def _bt709_limited(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """8-bit Y, Cb, Cr of an RGB colour by the BT.709 matrix in limited (16-235/240) range."""
    r, g, b = rgb
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return 16 + 219 * luma / 255, 128 + 224 * (b - luma) / 1.8556 / 255, 128 + 224 * (r - luma) / 1.5748 / 255


def _worst(got: list[tuple[int, ...]], want: list[tuple[float, ...]]) -> float:
    """The largest difference, in levels, of any channel of any patch."""
    return max(abs(g - w) for got_c, want_c in zip(got, want, strict=True) for g, w in zip(got_c, want_c, strict=True))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_stream_is_tagged_bt709_limited(tmp_path, suffix):
    frame, ctx = _decode(_write(tmp_path / f"out{suffix}"))
    for tags in (ctx, frame):
        assert (tags.colorspace, tags.color_range, tags.color_primaries, tags.color_trc) == (BT709, MPEG, 1, 1)


def test_mp4_carries_a_colr_box(tmp_path):
    data = _write(tmp_path / "out.mp4").read_bytes()
    # nclx: primaries 1, transfer 1, matrix 1 (all BT.709), then the full-range flag clear
    assert b"colrnclx\x00\x01\x00\x01\x00\x01\x00" in data


def test_planes_hold_bt709_limited_values(tmp_path):
    """The conversion is the one the tags name: BT.601 or full range would miss by 8+ levels."""
    frame, _ = _decode(_write(tmp_path / "out.mp4"))
    y, u, v = (_plane(frame, i) for i in range(3))
    got = [(int(y[SIZE // 2, x]), int(u[SIZE // 4, x // 2]), int(v[SIZE // 4, x // 2]))
           for x in (i * SIZE + SIZE // 2 for i in range(len(PATCHES)))]
    want = [_bt709_limited(rgb) for rgb in PATCHES]
    assert _worst(got, want) <= 1, f"got {got}, want {want}"


def test_colours_round_trip(tmp_path):
    path = _write(tmp_path / "out.mp4")
    frame, _ = _decode(path)
    got = _centres(frame.to_ndarray(format="rgb24"))
    assert _worst(got, PATCHES) <= TOLERANCE, got
    (decoded,) = read_frames(path)  # livedepth's own reader (bgr24)
    got = _centres(decoded.image[..., ::-1])
    assert _worst(got, PATCHES) <= TOLERANCE, got


def test_decoder_follows_the_tags(tmp_path):
    """The round trip depends on the tags: the same pixels read as BT.601 (what the untagged writer
    used, and what decoders assume for untagged SD video) come back visibly off."""
    frame, _ = _decode(_write(tmp_path / "out.mp4"))
    frame.colorspace = BT601
    got = _centres(frame.to_ndarray(format="rgb24"))
    assert _worst(got, PATCHES) > 10, got
