"""A real OpenCV window under Xvfb: it appears, `s` saves a PNG, `p` a PLY, `l` cycles the layouts, `q` quits."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pytest
from support.cli_helpers import ROOT, assert_one_line_error, start_cli
from support.clips import live_clip
from support.ply_reader import read_ply

pytestmark = pytest.mark.slow  # integration: see the README's fast lane

T = TypeVar("T")

# ./test.sh apt-installs Xvfb and xdotool; python-xlib (pure Python, no system library) is in the test extra.
needs_xvfb = pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xdotool") and importlib.util.find_spec("Xlib")),
    reason="needs Xvfb, xdotool and python-xlib (./test.sh installs them)",
)


def _free_display() -> int:
    """A display number that no X server is using."""
    for n in range(90, 190):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture
def xvfb() -> Iterator[dict[str, str]]:
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


def _x(env: dict[str, str], *args: str, check: bool = True) -> str:
    """Run an X client (xdotool) on the test's display; its stdout."""
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, check=check).stdout


def _wait_for(predicate: Callable[[], T | None], timeout: float, what: str, proc: subprocess.Popen[str]) -> T:
    """Poll ``predicate`` until it returns something non-empty; fail after ``timeout`` s or if ``proc`` ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"livedepth exited {proc.returncode} while waiting for {what}:\n{proc.communicate()[1]}")
        value = predicate()
        if value is not None and value is not False and (not hasattr(value, "__len__") or len(value)):
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _screenshot(env: dict[str, str]) -> np.ndarray:
    """The X root window as a BGR uint8 array, read with one GetImage request (python-xlib)."""
    from Xlib import X
    from Xlib.display import Display

    conn = Display(env["DISPLAY"])
    try:
        root = conn.screen().root
        size = root.get_geometry()
        image = root.get_image(0, 0, size.width, size.height, X.ZPixmap, 0xFFFFFFFF)
        lsb_first = conn.display.info.image_byte_order == X.LSBFirst
    finally:
        conn.close()
    # Xvfb's 24-bit TrueColor ZPixmap: 4 bytes a pixel, least significant first, so B, G, R, unused
    assert image.depth == 24 and lsb_first and len(image.data) == size.width * size.height * 4
    return np.frombuffer(image.data, np.uint8).reshape(size.height, size.width, 4)[:, :, :3]


def _geometry(env: dict[str, str], window: str) -> tuple[int, int, int, int]:
    """x, y, width, height of an X window."""
    g = dict(line.split("=") for line in _x(env, "xdotool", "getwindowgeometry", "--shell", window).split())
    x, y, w, h = (int(g[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
    return x, y, w, h


def _wait_painted(env: dict[str, str], window: str, proc: subprocess.Popen[str],
                  size: tuple[int, int] = (160, 120)) -> tuple[int, int, np.ndarray]:
    """Wait until ``window`` has ``size`` (it takes the frame's once the first frame is shown) and
    shows a picture; its position and pixels."""
    black_checks = 0

    def painted() -> tuple[int, int, np.ndarray] | None:
        nonlocal black_checks
        x, y, w, h = _geometry(env, window)
        if (w, h) != size:
            return None
        region = _screenshot(env)[y:y + h, x:x + w]
        if region.std() > 10:
            return x, y, region
        black_checks += 1
        if black_checks % 10 == 0:
            # Under bare Xvfb (no window manager) Qt sometimes misses the MapNotify of its
            # own window and never paints it; mapping it again, as a window manager would,
            # lets it paint. The window stays the same one the run opened.
            _x(env, "xdotool", "windowunmap", "--sync", window)
            _x(env, "xdotool", "windowmap", "--sync", window)
        return None

    return _wait_for(painted, 60, f"the {size[0]}x{size[1]} depth image in the window", proc)


@needs_xvfb
def test_window_shows_depth_snapshot_key_and_q_quits(tmp_path: Path, weights_pt: Path, xvfb: dict[str, str]) -> None:
    clip = live_clip(tmp_path / "clip.mp4", 1500, 25.0)  # 60 s: the run ends by the q key, not the file
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    proc = start_cli("live", "--input", str(clip), "--realtime", "--threads", "1", "--colormap", "turbo",
                     "--snapshot-dir", str(snaps), "--weights", str(weights_pt), env=xvfb)
    try:
        window = _wait_for(lambda: _x(xvfb, "xdotool", "search", "--name", "^livedepth$", check=False).split(),
                           120, "the livedepth window", proc)[0]
        x, y, region = _wait_painted(xvfb, window, proc)
        w, h = 160, 120
        # the status overlay (white text on a black band) is drawn at the top left
        assert (region[:15, :] > 200).all(axis=2).sum() > 10

        _x(xvfb, "xdotool", "mousemove", str(x + w // 2), str(y + h // 2))
        _x(xvfb, "xdotool", "key", "s")

        def snapshot() -> np.ndarray | None:
            # the PNG shows up before cv2.imwrite has finished it: wait until it reads whole
            pngs = list(snaps.glob("livedepth-*.png"))
            return cv2.imread(str(pngs[0])) if pngs else None

        snap = _wait_for(snapshot, 30, "the snapshot PNG", proc)
        assert snap.shape == (120, 160, 3)

        _x(xvfb, "xdotool", "key", "q")
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "quit" in stderr


@needs_xvfb
def test_l_cycles_the_3d_layouts_and_p_saves_a_point_cloud(tmp_path: Path, weights_pt: Path,
                                                           xvfb: dict[str, str]) -> None:
    clip = live_clip(tmp_path / "clip.mp4", 1500, 25.0)
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    proc = start_cli("live", "--input", str(clip), "--realtime", "--threads", "1", "--snapshot-dir", str(snaps),
                     "--fov", "80", "--weights", str(weights_pt), env=xvfb)
    try:
        window = _wait_for(lambda: _x(xvfb, "xdotool", "search", "--name", "^livedepth$", check=False).split(),
                           120, "the livedepth window", proc)[0]
        x, y, _ = _wait_painted(xvfb, window, proc)
        _x(xvfb, "xdotool", "mousemove", str(x + 80), str(y + 60))
        _x(xvfb, "xdotool", "key", "p")

        def cloud() -> bytes | None:
            plys = list(snaps.glob("livedepth-*.ply"))  # written under a temporary name, then renamed
            return plys[0].read_bytes() if plys else None

        header, points = read_ply(_wait_for(cloud, 30, "the point cloud PLY", proc))
        assert points.size == 160 * 120 and "fov 80" in " ".join(header)
        assert (points["z"] >= 1).all() and points["z"].max() > points["z"].min()

        # depth -> side, overlay, blur, sbs, half-sbs, tab: the window takes each layout's size
        _x(xvfb, "xdotool", "key", "l", "l", "l", "l", "l", "l")
        _wait_painted(xvfb, window, proc, size=(160, 240))
        _x(xvfb, "xdotool", "key", "q")
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    layouts = [line.split("layout: ")[1] for line in stderr.splitlines() if "layout: " in line]
    assert layouts == ["side", "overlay", "blur", "sbs", "half-sbs", "tab"]


def test_unreachable_display_is_a_one_line_error_not_an_abort(tmp_path: Path, weights_pt: Path) -> None:
    clip = live_clip(tmp_path / "clip.mp4", 5, 25.0)
    env = {**os.environ, "DISPLAY": f":{_free_display()}"}
    proc = subprocess.run(
        [sys.executable, "-m", "livedepth", "live", "--input", str(clip), "--weights", str(weights_pt)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert_one_line_error(proc, "cannot open a window on display")
    assert "--no-display" in proc.stderr
