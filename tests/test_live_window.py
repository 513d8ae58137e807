"""A real OpenCV window under Xvfb: it appears, `s` saves a PNG, `q` quits with exit 0."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_helpers import ROOT, assert_one_line_error
from live_helpers import make_clip

pytestmark = pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xdotool") and (shutil.which("import") or shutil.which("xwd"))),
    reason="needs Xvfb, xdotool and imagemagick (import) or xwd",
)


def _free_display() -> int:
    for n in range(90, 190):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture
def xvfb():
    """A private Xvfb server; yields the environment for processes that use it.

    ``-displayfd`` lets Xvfb pick a free display and say when it accepts clients, and
    ``-noreset`` keeps it from resetting whenever its last client (a probe, an xdotool poll)
    disconnects, which otherwise races with the window being mapped.
    """
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as ready:
        display = ready.readline().strip()  # written once the server accepts connections
    if not display:
        server.kill()
        pytest.fail("Xvfb did not start")
    env = {**os.environ, "DISPLAY": f":{display}"}
    env.pop("WAYLAND_DISPLAY", None)
    yield env
    server.terminate()
    server.wait(10)


def _x(env, *args: str, check: bool = True) -> str:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, check=check).stdout


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False and (not hasattr(value, "__len__") or len(value)):
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _screenshot(env, path: Path) -> np.ndarray:
    if shutil.which("import"):
        _x(env, "import", "-window", "root", str(path))
    else:
        xwd = path.with_suffix(".xwd")
        _x(env, "xwd", "-root", "-silent", "-out", str(xwd))
        _x(env, "convert", str(xwd), str(path))
    image = cv2.imread(str(path))
    assert image is not None
    return image


def test_window_shows_depth_snapshot_key_and_q_quits(tmp_path, weights_pt, xvfb):
    clip = make_clip(tmp_path / "clip.mp4", 1500, 25.0)  # 60 s: the run ends by the q key, not the file
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "livedepth", "live", "--input", str(clip), "--realtime", "--threads", "1",
         "--colormap", "turbo", "--snapshot-dir", str(snaps), "--weights", str(weights_pt)],
        cwd=ROOT, env=xvfb, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        window = _wait_for(lambda: _x(xvfb, "xdotool", "search", "--name", "^livedepth$", check=False).split(),
                           120, "the livedepth window")[0]

        black_checks = 0

        def painted():
            nonlocal black_checks
            geometry = _x(xvfb, "xdotool", "getwindowgeometry", "--shell", window)
            g = dict(line.split("=") for line in geometry.split())
            x, y, w, h = (int(g[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
            if (w, h) != (160, 120):  # the window takes the frame's size once the first frame is shown
                return None
            region = _screenshot(xvfb, tmp_path / "screen.png")[y:y + h, x:x + w]
            if region.std() > 10:
                return x, y, region
            black_checks += 1
            if black_checks % 10 == 0:
                # Under bare Xvfb (no window manager) Qt sometimes misses the MapNotify of its
                # own window and never paints it; mapping it again, as a window manager would,
                # lets it paint. The window stays the same one the run opened.
                _x(xvfb, "xdotool", "windowunmap", "--sync", window)
                _x(xvfb, "xdotool", "windowmap", "--sync", window)
            return None

        x, y, region = _wait_for(painted, 60, "the 160x120 depth image in the window")
        w, h = 160, 120
        # the status overlay (white text on a black band) is drawn at the top left
        assert (region[:15, :] > 200).all(axis=2).sum() > 10

        _x(xvfb, "xdotool", "mousemove", str(x + w // 2), str(y + h // 2))
        _x(xvfb, "xdotool", "key", "s")
        pngs = _wait_for(lambda: list(snaps.glob("livedepth-*.png")), 30, "the snapshot PNG")
        snap = cv2.imread(str(pngs[0]))
        assert snap is not None and snap.shape == (120, 160, 3)

        _x(xvfb, "xdotool", "key", "q")
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "quit" in stderr


def test_unreachable_display_is_a_one_line_error_not_an_abort(tmp_path, weights_pt):
    clip = make_clip(tmp_path / "clip.mp4", 5, 25.0)
    env = {**os.environ, "DISPLAY": f":{_free_display()}"}
    proc = subprocess.run(
        [sys.executable, "-m", "livedepth", "live", "--input", str(clip), "--weights", str(weights_pt)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert_one_line_error(proc, "cannot open a window on display")
    assert "--no-display" in proc.stderr
