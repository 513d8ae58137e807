"""The ``livedepth live`` command and ``run_live.py`` in real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import av
import pytest
from support.clips import live_clip
from support.cli_helpers import ROOT, assert_one_line_error, run_cli, start_cli
from support.live_helpers import free_port, kill, start_mjpeg_server
from support.models import MODELS, model_flags

STATS_KEYS = {
    "frames_captured", "frames_processed", "frames_dropped", "frames_shown",
    "fps_processed", "fps_captured", "latency_ms", "inference_ms", "wall_s",
}
NO_DISPLAY = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}


@pytest.mark.slow
def test_missing_camera_is_one_line_exit_2(weights_pt):
    proc = run_cli("live", "--camera", "97", "--no-display", "--weights", str(weights_pt))
    assert_one_line_error(proc, "cannot open camera 97")


@pytest.mark.slow
def test_no_display_says_so_and_suggests_alternatives(weights_pt):
    proc = run_cli("live", "--camera", "0", "--weights", str(weights_pt), env=NO_DISPLAY)
    assert_one_line_error(proc, "no display")
    assert "--no-display" in proc.stderr and "--record" in proc.stderr and "--serve" in proc.stderr


@pytest.mark.slow
def test_unreachable_stream_is_one_line_error(weights_pt):
    url = f"http://127.0.0.1:{free_port()}/stream.mjpg"
    proc = run_cli("live", "--input", url, "--no-display", "--weights", str(weights_pt))
    assert_one_line_error(proc, "cannot open stream")


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_file_run_writes_stats_and_a_playable_recording(tmp_path, model_weights, model):
    clip = live_clip(tmp_path / "clip.mp4", 30, 25.0)
    stats_path, out = tmp_path / "stats.json", tmp_path / "out.mp4"
    proc = run_cli("live", "--input", str(clip), "--no-display", "--max-frames", "6", "--threads", "1",
                   "--layout", "side", "--record", str(out), "--stats", str(stats_path),
                   *model_flags(model, model_weights[model]))
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(stats_path.read_text())
    assert set(stats) == STATS_KEYS and set(stats["latency_ms"]) == {"p50", "p95"}
    assert stats["frames_processed"] == stats["frames_shown"] == 6
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 6 and (frames[0].width, frames[0].height) == (320, 120)


def backend_log_lines(tmp_path, weights_pt, *flags: str) -> list[str]:
    """The ``backend:`` log lines of a one-frame live run."""
    clip = live_clip(tmp_path / "clip.mp4", 3, 25.0)
    proc = run_cli("live", "--input", str(clip), "--no-display", "--max-frames", "1", "--size", "64",
                   "--weights", str(weights_pt), *flags)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("livedepth: backend:")]


@pytest.mark.slow
def test_start_up_log_names_the_backend_that_runs_and_its_threads(tmp_path, weights_pt):
    # the tests' environment chooses ONNX Runtime (LIVEDEPTH_BACKEND); a flag chooses torch
    assert backend_log_lines(tmp_path, weights_pt, "--threads", "1") == [
        "livedepth: backend: onnx (LIVEDEPTH_BACKEND) on cpu, 1 thread"]
    assert backend_log_lines(tmp_path, weights_pt, "--backend", "torch", "--threads", "2") == [
        "livedepth: backend: torch on cpu, 2 threads"]


@pytest.mark.slow
def test_run_live_py_is_the_same_command_and_config_is_overridden_by_flags(tmp_path, weights_pt):
    clip = live_clip(tmp_path / "clip.mp4", 40, 25.0)
    config = tmp_path / "my.toml"
    config.write_text('[live]\nrealtime = true\n[model]\nthreads = 1\n[render]\nlayout = "side"\n')
    stats_path = tmp_path / "s.json"
    out = tmp_path / "o.mp4"
    proc = subprocess.run(
        [sys.executable, "run_live.py", "--input", str(clip), "--no-display", "--config", str(config),
         "--layout", "depth", "--record", str(out), "--stats", str(stats_path), "--weights", str(weights_pt)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **NO_DISPLAY},
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["frames_captured"] == 40
    assert stats["frames_processed"] + stats["frames_dropped"] == 40
    assert 1.2 <= stats["wall_s"] <= 20  # realtime from the config: paced, not decoded flat out
    with av.open(str(out)) as container:
        assert container.streams.video[0].width == 160  # --layout depth beat the config's side


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_stats_and_a_playable_file(tmp_path, weights_pt):
    clip = live_clip(tmp_path / "long.mp4", 750, 25.0)  # 30 s, stopped long before the end
    stats_path, out = tmp_path / "stats.json", tmp_path / "out.mp4"
    proc = start_cli("live", "--input", str(clip), "--realtime", "--no-display", "--threads", "1",
                     "--record", str(out), "--stats", str(stats_path), "--weights", str(weights_pt))
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and out.stat().st_size > 2000) and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr  # 128 + SIGTERM, like convert
    assert "Traceback" not in stderr and "terminated" in stderr
    stats = json.loads(stats_path.read_text())
    assert 0 < stats["frames_captured"] < 750
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) == stats["frames_shown"]


def test_opencv_without_gui_is_explained(monkeypatch):
    from livedepth.io import display

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(display.cv2, "getBuildInformation", lambda: "  GUI:                           NONE\n")
    assert display.gui_backend() == "NONE"
    try:
        display.check_gui()
    except display.LivedepthError as exc:
        assert "no GUI support" in str(exc) and "--no-display" in str(exc)
    else:
        raise AssertionError("check_gui must refuse a headless OpenCV build")


@pytest.mark.slow
def test_stream_lost_mid_run_ends_with_one_line_error_and_stats(tmp_path, weights_pt):
    port = free_port()
    server = start_mjpeg_server(port)
    stats_path, out = tmp_path / "stats.json", tmp_path / "out.mp4"
    proc = start_cli("live", "--input", f"http://127.0.0.1:{port}/stream.mjpg", "--no-display", "--threads", "1",
                     "--reconnect-timeout", "2", "--record", str(out), "--stats", str(stats_path),
                     "--weights", str(weights_pt))
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and out.stat().st_size > 2000) and time.monotonic() < deadline:
            time.sleep(0.2)  # frames are flowing once the recording grows
        kill(server)
        _, stderr = proc.communicate(timeout=90)
    finally:
        kill(server)
        proc.kill()
    assert_one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr),
                          "lost; no frames for 2 s, giving up")
    assert "reconnecting" in stderr
    stats = json.loads(stats_path.read_text())
    assert stats["frames_processed"] > 0
    assert stats["frames_processed"] + stats["frames_dropped"] == stats["frames_captured"]
    with av.open(str(out)) as container:  # the recording of the frames before the loss stays playable
        assert len(list(container.decode(video=0))) == stats["frames_shown"]


@pytest.mark.slow
def test_max_fps_flag_overrides_the_config_cap(tmp_path, weights_pt):
    clip = live_clip(tmp_path / "clip.mp4", 75, 25.0)  # 3 s
    config = tmp_path / "cap.toml"
    config.write_text("[live]\nmax_fps = 1000\n[model]\nthreads = 1\n")
    stats_path = tmp_path / "s.json"
    proc = run_cli("live", "--input", str(clip), "--realtime", "--no-display", "--config", str(config),
                   "--max-fps", "4", "--stats", str(stats_path), "--weights", str(weights_pt))
    assert proc.returncode == 0, proc.stderr
    assert "at most 4 fps" in proc.stderr
    stats = json.loads(stats_path.read_text())
    assert 0 < stats["fps_processed"] <= 4 * 1.1, stats
    assert stats["frames_processed"] + stats["frames_dropped"] == stats["frames_captured"] == 75


@pytest.mark.slow
def test_negative_max_fps_is_one_line_exit_2(weights_pt):
    proc = run_cli("live", "--input", "x.mp4", "--no-display", "--max-fps", "-2", "--weights", str(weights_pt))
    assert_one_line_error(proc, "--max-fps -2: must be at least 0")
