"""Rotated and mirrored videos (a display matrix, or the legacy ``rotate`` tag) are used upright,
as a player shows them, on every video path: the readers, convert (and --raw), batch, the Ray
transfer mode, live --input, calibration frames and metrics."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.sidedata.sidedata import Type
from support.cli_helpers import run_cli
from support.clips import corner_pattern, frame_image, make_oriented_clip, quadrant_means
from support.synthetic_scene import SceneClip

from livedepth.render.metrics import temporal_consistency
from livedepth.io.orientation import Orientation
from livedepth.io.sources import FileSource
from livedepth.io.video import probe, read_frames, sample_frames

#: (counter-clockwise degrees, mirror) of the display matrices tried: what PyAV's
#: ``set_display_rotation`` (and ffprobe's ``rotation``) calls 90, 180 and 270, and a mirror.
TURNS = [(90, False), (180, False), (270, False), (0, True)]
LOG = {90: "rotated 270 degrees clockwise", 180: "rotated 180 degrees clockwise",
       270: "rotated 90 degrees clockwise", 0: "mirrored"}


def _upright(turn: int, frames: int = 3) -> list[np.ndarray]:
    """Pictures as a player must show them: a phone's 480x270 stream turned upright is 270x480."""
    width, height = (270, 480) if turn in (90, 270) else (480, 270)
    return [corner_pattern(width, height, i) for i in range(frames)]


def _assert_top_left(image: np.ndarray) -> None:
    top_left, *others = quadrant_means(image)
    assert top_left > 200 and max(others) < 60, quadrant_means(image)


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
@pytest.mark.parametrize("mirror", [False, True])
def test_readers_give_the_upright_picture_for_all_eight_orientations(tmp_path, turn, mirror):
    upright = [frame_image(i, 40, 24) for i in range(3)]  # asymmetric, different every frame
    clip = make_oriented_clip(tmp_path / "c.mkv", upright, turn, mirror)
    info = probe(clip)
    assert (info.width, info.height) == (40, 24)
    assert info.orientation == Orientation((-turn) % 360, mirror)
    frames = [frame.image for frame in read_frames(clip)]
    assert all(np.array_equal(got, want) for got, want in zip(frames, upright, strict=True))
    assert all(np.array_equal(got, want) for got, want in zip(sample_frames(clip, 3), upright, strict=True))


def test_the_legacy_rotate_tag_is_honoured_and_the_matrix_wins_over_it(tmp_path, caplog):
    upright = [frame_image(i, 40, 24) for i in range(2)]
    tagged = make_oriented_clip(tmp_path / "tag.mkv", upright, 270, matrix=False, rotate_tag="90")
    with caplog.at_level("INFO"):
        frames = [frame.image for frame in read_frames(tagged)]
    assert all(np.array_equal(got, want) for got, want in zip(frames, upright, strict=True))
    assert "tag.mkv: rotated 90 degrees clockwise as its rotate tag says" in caplog.text
    both = make_oriented_clip(tmp_path / "both.mkv", upright, 180, rotate_tag="90")
    assert probe(both).orientation == Orientation(180)


def test_an_upright_video_is_untouched_and_says_nothing(tmp_path, caplog):
    upright = [frame_image(i, 40, 24) for i in range(2)]
    clip = make_oriented_clip(tmp_path / "plain.mp4", upright, matrix=False)
    with caplog.at_level("INFO"):
        assert probe(clip).orientation == Orientation()
        list(read_frames(clip))
    assert "rotated" not in caplog.text and "mirrored" not in caplog.text


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command (test.sh installs it)")
@pytest.mark.parametrize("turn, mirror", TURNS)
def test_the_picture_is_the_one_ffmpeg_shows(tmp_path, turn, mirror):
    """ffmpeg turns videos upright by their display matrix: it is the reference player."""
    clip = make_oriented_clip(tmp_path / "phone.mp4", [frame_image(i, 48, 32) for i in range(2)], turn, mirror)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-frames:v", "1", str(tmp_path / "ref.png")],
                   check=True, timeout=60)
    reference = cv2.imread(str(tmp_path / "ref.png"))
    ours = next(read_frames(clip)).image
    assert ours.shape == reference.shape
    assert np.abs(ours.astype(int) - reference).mean() < 2  # the same picture (YUV -> BGR rounding aside)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, weights_pt):
    """Each phone clip (480x270 stored, turned by its display matrix) converted with --layout side
    and --raw, next to the same pictures stored upright; {turn: (clip, side, raw, stderr)}."""
    folder = tmp_path_factory.mktemp("turned")
    done = {}
    for turn, mirror in [*TURNS, ("upright", False)]:
        name = f"turn{turn}"
        pictures = _upright(90 if turn == "upright" else turn)
        clip = make_oriented_clip(folder / f"{name}.mp4", pictures, 0 if turn == "upright" else turn, mirror,
                                  matrix=turn != "upright")
        side, raw = folder / f"{name}-side.mp4", folder / f"{name}-raw.mkv"
        proc = run_cli("convert", str(clip), str(side), "--layout", "side", "--raw", str(raw), "--threads", "1",
                       "--weights", str(weights_pt))
        assert proc.returncode == 0, proc.stderr
        done[turn] = (clip, side, raw, proc.stderr)
    return done


@pytest.mark.parametrize("turn, mirror", TURNS)
def test_convert_side_layout_and_raw_are_upright(converted, turn, mirror):
    clip, side, raw, stderr = converted[turn]
    assert f"{clip}: {LOG[turn]} as its display matrix says" in stderr
    with av.open(str(side)) as container:
        first = next(container.decode(video=0))
        assert first.rotation == 0 and Type.DISPLAYMATRIX not in first.side_data  # upright, no matrix
    frames = [frame.image for frame in read_frames(side)]
    expected = (540, 480) if turn in (90, 270) else (960, 270)  # 270x480 upright, twice side by side
    assert len(frames) == 3 and (frames[0].shape[1], frames[0].shape[0]) == expected
    for image in frames:
        _assert_top_left(image[:, : expected[0] // 2])  # the left half is the input as shown
    with av.open(str(raw)) as container:
        depth = [frame.to_ndarray() for frame in container.decode(video=0)]
    assert depth[0].shape == (expected[1], expected[0] // 2)


def test_raw_depth_of_a_turned_clip_is_that_of_the_same_pictures_stored_upright(converted):
    """The lossless clips decode to the same upright frames, so the model sees the same pictures."""
    def stored(raw: Path) -> list[np.ndarray]:
        with av.open(str(raw)) as container:
            return [frame.to_ndarray() for frame in container.decode(video=0)]

    turned, upright = stored(converted[90][2]), stored(converted["upright"][2])
    assert len(turned) == len(upright) == 3
    assert all(np.array_equal(a, b) for a, b in zip(turned, upright, strict=True))


def test_live_input_records_the_upright_picture(tmp_path, weights_pt):
    clip = make_oriented_clip(tmp_path / "phone.mp4", _upright(90, 4), 90)
    out = tmp_path / "live.mp4"
    proc = run_cli("live", "--input", str(clip), "--no-display", "--layout", "side", "--record", str(out),
                   "--threads", "1", "--weights", str(weights_pt), env={"DISPLAY": "", "WAYLAND_DISPLAY": ""})
    assert proc.returncode == 0, proc.stderr
    assert "rotated 270 degrees clockwise as its display matrix says" in proc.stderr
    frames = [frame.image for frame in read_frames(out)]
    assert len(frames) == 4 and frames[0].shape == (480, 540, 3)
    for image in frames:
        _assert_top_left(image[:, :270])


def test_file_source_reads_what_the_converter_reads(tmp_path):
    upright = [frame_image(i, 40, 24) for i in range(3)]
    source = FileSource(make_oriented_clip(tmp_path / "c.mkv", upright, 90, True))
    stop = threading.Event()
    try:
        frames = [source.read(stop) for _ in range(4)]
    finally:
        source.release()
    assert frames[3] is None
    assert all(np.array_equal(got, want) for got, want in zip(frames[:3], upright, strict=True))


def test_metrics_pair_a_turned_source_with_its_upright_depth(tmp_path):
    """The --raw export is upright; its turned source video must be read upright to pair with it."""
    scene = list(SceneClip(width=160, height=96, frames_count=8, pan_px_per_frame=2.0, object_speed=4.0).frames())
    rgb = make_oriented_clip(tmp_path / "rgb.mkv", [frame for frame, _ in scene], 90)
    depth = tmp_path / "depth.mkv"
    with av.open(str(depth), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "gray16le"
        for i, (_, d) in enumerate(scene):
            frame = av.VideoFrame.from_ndarray(np.round(d / 3.0 * 65535).astype(np.uint16), format="gray16le")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    proc = run_cli("metrics", str(depth), "--rgb", str(rgb))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert float(lines["TC"]) == pytest.approx(temporal_consistency(scene).tc, abs=0.01)
    assert lines["frames"].startswith("8 ")
