"""A second Ctrl+C ends a convert promptly, keeping a playable output of the finished frames."""

from __future__ import annotations

import signal
import time
from fractions import Fraction

import pytest
from support.clips import decoded_pts, frames_in_growing_file, make_clip
from support.cli_helpers import start_cli

from livedepth.run.convert import partial_path

pytestmark = pytest.mark.slow  # integration: see the README's fast lane


def test_second_sigint_ends_a_slow_convert_within_5_s(tmp_path, weights_pt):
    # One frame a second makes every frame a keyframe (a fragment each), so finished frames show
    # up in the partial file at once; a 2048x2048 network input on one torch thread makes each
    # forward take seconds, so the first Ctrl+C alone would wait for the frame in flight.
    src = tmp_path / "in.mp4"
    make_clip(src, frames=20, rate=Fraction(1), audio=None)
    out = tmp_path / "depth.mp4"
    proc = start_cli("convert", str(src), str(out), "--weights", str(weights_pt), "--backend", "torch",
                     "--size", "2048", "--threads", "1", "--preset", "ultrafast")
    try:
        deadline = time.monotonic() + 300
        while frames_in_growing_file(partial_path(out)) < 1 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
        ended = time.monotonic() - sent
    finally:
        proc.kill()
    assert ended <= 5.0, f"took {ended:.1f} s after the second Ctrl+C"
    # 130, or killed by SIGINT itself when a forward pass was still running (see cli.common.Interrupts)
    assert proc.returncode in (130, -signal.SIGINT), stderr
    assert "Traceback" not in stderr and "(playable)" in stderr
    times, n = decoded_pts(out)
    assert 1 <= n < 20 and times == decoded_pts(src)[0][:n]
    assert not partial_path(out).exists()
