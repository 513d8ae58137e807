"""The Camera Module source (picamera2) without a Raspberry Pi.

``tests/support/fake_picamera2/`` is an API-contract stand-in for picamera2 (see its docstring): these
tests check that livedepth uses picamera2's documented calls correctly (configuration, BGR
layout of ``"RGB888"``, sensor timestamps, release, stop and close on every way out). They are
not a test of real hardware.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support.cli_helpers import assert_one_line_error, run_cli

from livedepth.io import picamera, sources
from livedepth.render.colorize import Colorizer
from livedepth.core.errors import LivedepthError
from livedepth.inference.estimator import DepthEstimator
from livedepth.run.pipeline import LivePipeline
from livedepth.settings import load_settings
from livedepth.io.sinks import Sink
from livedepth.io.picamera import PicameraSource
from livedepth.io.sources import open_source, parse_camera

FAKE = Path(__file__).resolve().parent / "support" / "fake_picamera2"
SMALL = (160, 120)


@pytest.fixture
def fake(monkeypatch):
    """The stand-in importable as ``picamera2`` for this test only."""
    monkeypatch.syspath_prepend(str(FAKE))
    sys.modules.pop("picamera2", None)
    module = importlib.import_module("picamera2")
    module.reset()
    yield module
    sys.modules.pop("picamera2", None)


@pytest.fixture(scope="module")
def estimator(weights_pt):
    return DepthEstimator(weights=weights_pt, size=64, threads=1, backend="torch").load()


class Recorder(Sink):
    """Keeps every frame the pipeline shows; ``on_frame`` runs after each."""

    def __init__(self, on_frame=None) -> None:
        self.frames = []
        self.on_frame = on_frame

    def write(self, rendered) -> None:
        self.frames.append(rendered.frame)
        if self.on_frame is not None:
            self.on_frame(len(self.frames))


def _check_frames(frames, camera, fake) -> None:
    """Indices increase; colours are right (BGR); capture times are the sensor's."""
    assert frames, "no frame reached the sinks"
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    numbers = [int(f.image[0, 0, 0]) for f in frames]
    assert numbers == sorted(set(numbers)), numbers
    for frame, number in zip(frames, numbers):
        h, w = frame.image.shape[:2]
        assert frame.image.dtype == np.uint8 and frame.image.flags["C_CONTIGUOUS"]
        red = frame.image[fake.patch_slices(h, w, fake.RED_PATCH)]
        blue = frame.image[fake.patch_slices(h, w, fake.BLUE_PATCH)]
        assert (red == (0, 0, 255)).all(), "red must reach the pipeline as BGR (0, 0, 255)"
        assert (blue == (255, 0, 0)).all(), "blue must reach the pipeline as BGR (255, 0, 0)"
        assert frame.captured_at == pytest.approx(camera.stamps[number] / 1e9, abs=1e-6)
    stamps = [f.captured_at for f in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


def test_live_run_from_a_camera_module(fake, estimator):
    source = open_source(camera="picam", camera_size=SMALL)
    assert isinstance(source, PicameraSource) and source.name == "picam:0 (imx708)"
    assert source.fps == pytest.approx(30.0, rel=1e-3)
    camera = fake.instances[-1]
    assert camera.config["main"] == {"size": SMALL, "format": "RGB888"}
    sink = Recorder()
    stats = LivePipeline(source, estimator, Colorizer(), [sink], max_frames=4).run()
    _check_frames(sink.frames, camera, fake)
    assert len(sink.frames) == stats["frames_shown"] == 4
    assert sink.frames[0].image.shape == (SMALL[1], SMALL[0], 3)
    # Latency counts from the sensor's readout, which the camera delivers DELIVERY_NS later.
    assert stats["latency_ms"]["p50"] >= fake.DELIVERY_NS / 1e6
    assert camera.calls == ["configure", "start", "stop", "close"]
    assert camera.outstanding == 0, "every request must be released"


def test_stop_closes_the_camera(fake, estimator):
    source = open_source(camera="picam:0", camera_size=SMALL)
    camera = fake.instances[-1]
    pipeline = LivePipeline(source, estimator, Colorizer(), [])
    # The CLI maps q and Ctrl+C to stop(), called from another thread than the run's.
    pipeline.add_sink(Recorder(on_frame=lambda n: n == 3 and threading.Thread(target=pipeline.stop).start()))
    stats = pipeline.run()
    assert pipeline.stop_reason == "stopped" and stats["frames_shown"] >= 3
    _check_frames(pipeline.sinks[0].frames, camera, fake)
    assert camera.calls[-2:] == ["stop", "close"] and not camera.is_open and camera.outstanding == 0


def test_a_camera_error_mid_stream_ends_the_run_and_closes_the_camera(fake, estimator):
    source = open_source(camera="picam", camera_size=SMALL)
    camera = fake.instances[-1]
    camera.fail_after = 5
    sink = Recorder()
    with pytest.raises(LivedepthError, match=r"^picam:0 \(imx708\) failed: RuntimeError: camera fell off the bus$"):
        LivePipeline(source, estimator, Colorizer(), [sink]).run()
    assert camera.calls[-2:] == ["stop", "close"] and camera.outstanding == 0
    _check_frames(sink.frames, camera, fake)


def test_a_stalled_camera_is_an_error(fake, monkeypatch):
    monkeypatch.setattr(picamera, "CAMERA_STALL_S", 0.3)
    source = PicameraSource(0, size=SMALL)
    camera = fake.instances[-1]
    camera.stall_after = 2
    stop = threading.Event()
    assert source.read(stop) is not None and source.read(stop) is not None
    started = time.monotonic()
    with pytest.raises(LivedepthError, match="picam:0 .* stopped delivering frames"):
        source.read(stop)
    assert time.monotonic() - started < 2
    source.release()
    source.release()  # idempotent
    assert camera.calls == ["configure", "start", "stop", "close"]


def test_stop_interrupts_a_read_waiting_for_a_frame(fake):
    source = PicameraSource(0, size=SMALL)
    fake.instances[-1].stall_after = 0
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert source.read(stop) is None
    assert time.monotonic() - started < 1.5
    source.release()


def test_sensor_stamps_from_another_clock_are_anchored_to_arrival(fake, caplog):
    source = PicameraSource(0, size=SMALL)
    camera = fake.instances[-1]
    camera.clock_offset_ns = 3_600 * 10**9  # e.g. CLOCK_BOOTTIME after an hour of suspend
    stop = threading.Event()
    times, numbers = [], []
    with caplog.at_level(logging.WARNING, logger="livedepth"):
        for _ in range(4):
            image = source.read(stop)
            times.append(source.capture_time())
            numbers.append(int(image[0, 0, 0]))
            assert times[-1] <= time.monotonic()
    source.release()
    assert "off time.monotonic()" in caplog.text
    sensor = [camera.stamps[n] / 1e9 for n in numbers]
    # Anchored at the quickest arrival so far: never later than the read, intervals kept after the first.
    np.testing.assert_allclose(np.diff(times[1:]), np.diff(sensor[1:]), atol=0.01)


def test_open_failures_close_the_camera_and_say_so(fake):
    with pytest.raises(LivedepthError, match=r"^no Camera Module 2: libcamera sees 1 Camera Module\(s\)$"):
        open_source(camera="picam:2")
    fake.CAMERAS.append(dict(fake.CAMERAS[0], Num=1))
    try:
        original = fake.Picamera2.start

        def failing_start(self):
            self.start_error = RuntimeError("Failed to start camera: Device or resource busy")
            original(self)

        fake.Picamera2.start = failing_start
        with pytest.raises(LivedepthError, match="cannot start picam:1 .*Device or resource busy"):
            open_source(camera="picam:1")
        assert fake.instances[-1].calls == ["configure", "start", "close"]
    finally:
        fake.Picamera2.start = original
        fake.CAMERAS.pop()


def test_camera_n_without_a_v4l2_device_falls_back_to_picamera2(fake, monkeypatch, caplog):
    def no_v4l2(index, *args, **kwargs):
        raise LivedepthError(f"cannot open camera {index} (no such device, or it is busy); try --input FILE")

    monkeypatch.setattr(sources, "CameraSource", no_v4l2)
    with caplog.at_level(logging.INFO, logger="livedepth"):
        source = open_source(camera=0)
    assert isinstance(source, PicameraSource)
    assert "camera 0: no V4L2 camera; using Camera Module 0 through picamera2" in caplog.text
    source.release()
    with pytest.raises(LivedepthError, match="cannot open camera 1 "):
        open_source(camera="1")  # picamera2 sees one camera only: the V4L2 error stands


def test_a_libcamera_node_is_not_opened_with_opencv(fake, monkeypatch, tmp_path):
    (tmp_path / "video0").mkdir()
    (tmp_path / "video0" / "name").write_text("unicam-image\n")
    monkeypatch.setattr(sources, "SYSFS_V4L2", tmp_path)
    monkeypatch.setattr(sources, "CameraSource", lambda *a, **k: pytest.fail("OpenCV must not open a libcamera node"))
    source = open_source(camera=0)
    assert isinstance(source, PicameraSource)
    source.release()


def test_without_picamera2_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # as if not installed, even on a Pi
    with pytest.raises(LivedepthError, match="sudo apt install python3-picamera2"):
        open_source(camera="picam")
    with pytest.raises(LivedepthError, match="sudo apt install python3-picamera2"):
        sources.check_camera("picam:1")  # what a command can check before it loads the model
    sources.check_camera(97)  # an index is checked when it is opened
    with pytest.raises(LivedepthError, match="cannot open camera 97"):
        open_source(camera=97)
    (tmp_path / "video0").mkdir()
    (tmp_path / "video0" / "name").write_text("rp1-cfe-csi2_ch0\n")
    monkeypatch.setattr(sources, "SYSFS_V4L2", tmp_path)
    with pytest.raises(LivedepthError, match=r"/dev/video0 \(rp1-cfe-csi2_ch0\) is a Camera Module node.*picam:0"):
        open_source(camera=0)


@pytest.mark.parametrize(("spec", "parsed"), [(None, ("v4l2", 0)), (2, ("v4l2", 2)), ("1", ("v4l2", 1)),
                                               ("picam", ("picam", 0)), ("picam:1", ("picam", 1))])
def test_camera_specs(spec, parsed):
    assert parse_camera(spec) == parsed


def test_camera_setting_accepts_an_index_or_picam(tmp_path):
    assert load_settings("desktop").live.camera == "0"  # camera = 0 (a TOML int)
    assert load_settings(None, flags={("live", "camera"): "picam:1"}).live.camera == "picam:1"
    config = tmp_path / "c.toml"
    config.write_text('[live]\ncamera = "picam"\n')
    assert load_settings(config).live.camera == "picam"
    config.write_text("[live]\ncamera = -1\n")
    with pytest.raises(LivedepthError, match=r"\[live\] camera = -1: must be N \(a camera index\), picam or picam:N"):
        load_settings(config)


def test_cli_rejects_a_bad_camera_in_one_line():
    proc = run_cli("live", "--camera", "picamera", "--no-display")
    assert_one_line_error(proc, "--camera picamera: must be N (a camera index), picam or picam:N")


def test_cli_without_picamera2_exits_2_with_the_install_hint(weights_pt):
    proc = run_cli("live", "--camera", "picam", "--no-display", "--weights", str(weights_pt),
                   "--backend", "torch", "--size", "64", "--threads", "1")
    assert_one_line_error(proc, "needs picamera2, which is not installed: sudo apt install python3-picamera2")


def test_cli_live_from_the_stand_in_camera(weights_pt, tmp_path):
    stats = tmp_path / "stats.json"
    proc = run_cli("live", "--camera", "picam", "--no-display", "--max-frames", "3", "--stats", str(stats),
                   "--weights", str(weights_pt), "--backend", "torch", "--size", "64", "--threads", "1",
                   env={"PYTHONPATH": str(FAKE)})
    assert proc.returncode == 0, proc.stderr
    assert "picam:0 (imx708)" in proc.stderr
    assert json.loads(stats.read_text())["frames_processed"] == 3
