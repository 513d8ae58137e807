"""Sources and the newest-frame holder, with real threads, real files and a real HTTP stream."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from support.clips import live_clip
from support.live_helpers import free_port, kill, start_mjpeg_server

from livedepth.core.errors import LivedepthError
from livedepth.core.frames import Frame
from livedepth.io.source import Source
from livedepth.io.sources import CameraSource, FileSource, StreamSource, open_source
from livedepth.run.capture import Capture
from livedepth.core.stages import Latest, Stages


def _capture(source) -> tuple[Capture, Latest[Frame], Stages]:
    """A capture stage of ``source`` running in its own thread."""
    holder: Latest[Frame] = Latest()
    stages = Stages("capture")
    capture = Capture(source, holder, stages.stop_event)
    stages.start("capture", capture.run, on_exit=capture.close)
    return capture, holder, stages


def test_latest_frame_never_hands_out_a_frame_twice_and_counts_drops():
    holder: Latest[Frame] = Latest()
    taken: list[int] = []
    total = 400

    def consume():
        while (frame := holder.take(timeout=5)) is not None:
            taken.append(frame.index)
            time.sleep(0.002)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(total):
        holder.put(Frame(np.zeros((1, 1, 3), np.uint8), i, time.monotonic()))
        if i % 7 == 0:
            time.sleep(0.001)
    holder.close()
    consumer.join(10)
    assert not consumer.is_alive()
    assert taken == sorted(set(taken)), "ids must strictly increase"
    assert taken[-1] == total - 1, "the newest frame must reach the consumer"
    assert len(taken) + holder.dropped == total
    assert holder.dropped > 0


def test_file_on_demand_decodes_only_when_asked(tmp_path):
    clip = live_clip(tmp_path / "c.mp4", 12, 25.0)
    source = FileSource(clip)
    assert not source.paced
    capture, holder, stages = _capture(source)
    time.sleep(0.3)
    assert capture.captured == 0, "nothing is decoded before inference asks"
    ids = []
    while (frame := holder.take(timeout=5)) is not None:
        ids.append(frame.index)
        time.sleep(0.02)  # a consumer slower than the decoder: still nothing is dropped
    stages.join(5)
    assert ids == list(range(12)) and holder.dropped == 0 and stages.error is None


def test_realtime_file_is_paced_at_its_float_frame_rate(tmp_path):
    clip = live_clip(tmp_path / "slow.mp4", 6, 2.5)
    source = FileSource(clip, realtime=True)
    assert source.paced and source.fps == pytest.approx(2.5)
    _, holder, stages = _capture(source)
    stamps = []
    while (frame := holder.take(timeout=5)) is not None:
        stamps.append(frame.captured_at)
    stages.join(5)
    assert len(stamps) == 6
    span = stamps[-1] - stamps[0]
    # 5 intervals of 0.4 s = 2.0 s; int(fps) pacing would give 2.5 s.
    assert 1.9 <= span <= 2.3, span


def test_missing_camera_is_a_one_line_error():
    with pytest.raises(LivedepthError, match="cannot open camera 97"):
        CameraSource(97)


def test_missing_file_and_unreachable_url_are_errors(tmp_path):
    with pytest.raises(LivedepthError, match="input not found"):
        open_source(input=str(tmp_path / "nope.mp4"))
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(LivedepthError, match="cannot read .*junk.mp4"):
        open_source(input=str(tmp_path / "junk.mp4"))
    with pytest.raises(LivedepthError, match="cannot open stream"):
        StreamSource(f"http://127.0.0.1:{free_port()}/x.mjpg", io_timeout=2)


def test_mjpeg_stream_reconnects_then_gives_up_with_a_clear_error():
    port = free_port()
    server = start_mjpeg_server(port)
    stop = threading.Event()
    try:
        source = StreamSource(f"http://127.0.0.1:{port}/stream.mjpg", reconnect_timeout=20, io_timeout=2)
        assert source.read(stop).shape == (120, 160, 3)
        for _ in range(5):
            assert source.read(stop) is not None
        kill(server)  # the stream drops mid-run
        server = start_mjpeg_server(port)
        for _ in range(5):
            assert source.read(stop) is not None
        assert source.reconnects >= 1
    finally:
        kill(server)
    source.reconnect_timeout = 2
    started = time.monotonic()
    with pytest.raises(LivedepthError, match="lost; no frames for 2 s, giving up"):
        while True:
            source.read(stop)
    assert time.monotonic() - started < 15
    source.release()


class StampedSource(Source):
    """Three frames, each stamped by the "device" with its own capture time."""

    paced = False

    def __init__(self) -> None:
        self.count = 0

    def read(self, stop):
        self.count += 1
        return np.zeros((2, 2, 3), np.uint8) if self.count <= 3 else None

    def capture_time(self) -> float:
        return 1000.0 + self.count


def test_frames_carry_the_sources_capture_time():
    _, holder, stages = _capture(StampedSource())
    stamps = []
    while (frame := holder.take(timeout=5)) is not None:
        stamps.append((frame.index, frame.captured_at))
    stages.join(5)
    assert stamps == [(0, 1001.0), (1, 1002.0), (2, 1003.0)]


def test_a_plain_source_is_stamped_when_read():
    before = time.monotonic()
    assert before <= Source().capture_time() <= time.monotonic()


def test_bad_camera_specs_are_one_line_errors():
    with pytest.raises(LivedepthError, match=r"^--camera picam1: must be N \(a camera index\), picam or picam:N"):
        open_source(camera="picam1")
