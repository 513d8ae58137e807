"""``livedepth serve`` and ``live --serve`` as subprocesses, reached with a real HTTP client."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from support.cli_helpers import ROOT, assert_one_line_error, run_cli
from support.models import MODELS, model_flags
from test_web import FIXTURE_PNG, get, read_mjpeg_frames

pytestmark = pytest.mark.slow  # integration: see the README's fast lane


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 s, 15 fps synthetic video (a disc moving over a gradient)."""
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (160, 120))
    ramp = np.repeat(np.repeat(np.linspace(0, 200, 160, dtype=np.uint8)[None, :, None], 120, 0), 3, 2)
    for i in range(300):
        frame = ramp.copy()
        cv2.circle(frame, (i * 3 % 160, 60), 25, (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return path


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start a command, wait for its ``serving URL`` line, and stop it with Ctrl+C at the end."""
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ.copy())
    try:
        line = proc.stdout.readline()
        match = re.match(r"serving (http://\S+)", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        finally:
            proc.kill()


def port_of(url: str) -> int:
    return int(re.search(r":(\d+)/", url).group(1))


def test_serve_beyond_loopback_needs_a_token() -> None:
    proc = run_cli("serve", "--host", "0.0.0.0", "--port", "0", env={"LIVEDEPTH_TOKEN": ""})
    assert_one_line_error(proc, "needs --token")
    proc = run_cli("live", "--no-display", "--serve", "0.0.0.0:0", env={"LIVEDEPTH_TOKEN": ""})
    assert_one_line_error(proc, "needs --token")


@pytest.mark.parametrize("model", MODELS)
def test_serve_without_a_source_is_the_photo_page(model_weights: dict[str, Path], model: str) -> None:
    with serving("-m", "livedepth", "serve", "--port", "0", *model_flags(model, model_weights[model])) as (proc, url):
        port = port_of(url)
        settings = json.loads(get(port, "/settings")[2])
        assert settings["live"] is False and settings["upload"] is True
        assert get(port, "/stream.mjpg")[0] == 404
        status, headers, body = get(port, "/depth?layout=overlay", method="POST", body=FIXTURE_PNG.read_bytes())
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    assert proc.returncode == 130, proc.stderr.read()  # stopped by Ctrl+C


@pytest.mark.parametrize("model", MODELS)
def test_serve_a_file_with_a_token_on_all_interfaces(model_weights: dict[str, Path], clip: Path, model: str) -> None:
    args = ("-m", "livedepth", "serve", "--input", str(clip), "--realtime", "--host", "0.0.0.0", "--port", "0",
            "--token", "t0k", "--config", "rpi", *model_flags(model, model_weights[model]), "--jpeg-quality", "50")
    with serving(*args) as (proc, url):
        assert url.endswith("/?token=t0k")
        port = port_of(url)
        assert get(port, "/stats")[0] == 401
        frames = read_mjpeg_frames(port, 2, "/stream.mjpg?token=t0k")
        assert cv2.imdecode(np.frombuffer(frames[-1], np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
        stats = json.loads(get(port, "/stats?token=t0k")[2])
        assert stats["live"] is True and stats["frames_processed"] >= 2
    assert proc.returncode == 130, proc.stderr.read()  # stopped by Ctrl+C


def test_run_live_serve_port(weights_pt: Path, clip: Path) -> None:
    args = ("run_live.py", "--input", str(clip), "--realtime", "--no-display", "--serve", "0",
            "--weights", str(weights_pt))
    with serving(*args) as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        port = port_of(url)
        assert len(read_mjpeg_frames(port, 2)) == 2
        assert json.loads(get(port, "/stats")[2])["frames_processed"] >= 2
    assert proc.returncode == 130, proc.stderr.read()  # stopped by Ctrl+C


def test_no_uploads_refuses_a_photo_and_starts_no_process(weights_pt: Path, clip: Path) -> None:
    """With uploads off the server process has no child at all; with them on, one upload starts
    the worker (and multiprocessing's resource tracker)."""
    from test_web import child_pids

    for flags, expected in (("--no-uploads",), 404), ((), 200):
        args = ("-m", "livedepth", "serve", "--input", str(clip), "--realtime", "--port", "0",
                "--weights", str(weights_pt), *flags)
        with serving(*args) as (proc, url):
            port = port_of(url)
            assert get(port, "/")[0] == 200
            assert json.loads(get(port, "/settings")[2])["upload"] is (expected == 200)
            status, _, body = get(port, "/depth", method="POST", body=FIXTURE_PNG.read_bytes())
            assert status == expected, body
            children = child_pids(proc.pid)
            if flags:
                assert body == b"error: photo upload is turned off on this server\n"
                assert not children, children
            else:
                assert children, "the upload worker runs as a child process"
        assert proc.returncode == 130, proc.stderr.read()


def test_serve_with_nothing_to_serve_is_one_line_error() -> None:
    proc = run_cli("serve", "--port", "0", "--no-uploads")
    assert_one_line_error(proc, "nothing to serve")
