"""Interrupting ``livedepth convert`` for real: SIGINT/SIGTERM keep a playable file, SIGKILL leaves fragments."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import pytest
from support.cli_helpers import start_cli
from support.clips import decoded_pts, frames_in_growing_file, make_clip

from livedepth.run.convert import partial_path

pytestmark = pytest.mark.slow  # integration: see the README's fast lane

FRAMES = 900  # far more than gets converted before the signal


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """10 fps (a keyframe and so an mp4 fragment every 10 frames), with audio."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    make_clip(path, frames=FRAMES, width=64, height=48, rate=Fraction(10), audio="aac")
    return path


def _start(src: Path, out: Path, weights: Path) -> subprocess.Popen:
    return start_cli("convert", str(src), str(out), "--weights", str(weights))


def _wait_for_frames(proc: subprocess.Popen, path: Path, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        n = frames_in_growing_file(path)
        if n > 0:
            return n
        time.sleep(0.5)
    proc.kill()
    pytest.fail("no frames were written in time")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_leave_a_playable_file(tmp_path, long_clip, weights_pt, signum, code):
    out = tmp_path / "depth.mp4"
    proc = _start(long_clip, out, weights_pt)
    seen = _wait_for_frames(proc, partial_path(out))
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert f"interrupted by {signal.Signals(signum).name}" in stderr and "(playable)" in stderr
    assert "Traceback" not in stderr
    assert not partial_path(out).exists()
    times, n = decoded_pts(out)
    assert seen <= n < FRAMES
    assert times == decoded_pts(long_clip)[0][:n]  # every finished frame, with its own timestamp
    assert f"wrote {n} finished frames" in stderr


def test_sigkill_leaves_a_file_that_still_decodes(tmp_path, long_clip, weights_pt):
    out = tmp_path / "depth.mp4"
    proc = _start(long_clip, out, weights_pt)
    _wait_for_frames(proc, partial_path(out))
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not out.exists()
    times, n = decoded_pts(partial_path(out))
    assert 0 < n < FRAMES
    assert times == decoded_pts(long_clip)[0][:n]
