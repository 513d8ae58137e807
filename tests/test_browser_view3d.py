"""The page's 3D view in a real browser: Playwright driving Debian's Chromium, headless, with WebGL
through SwiftShader (no GPU), fed by a real server with frames of known depth."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from livedepth.render.colorize import Colorizer, apply_colormap
from livedepth.web.server import WebOptions, WebServer
from support.synthetic_scene import SceneClip
from test_browser import ARGS, ARTIFACTS, CHROMIUM

SWIFTSHADER = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
BACKGROUND = (17, 17, 17)  # the page's #111, where the mesh is not

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two frames of a scene with known depth (ground, wall, boxes, a disc coming in), with the
    normalised grey the colours would use."""
    colorizer = Colorizer(normalize="frame")
    frames = list(SceneClip(320, 240, frames_count=30, pan_px_per_frame=4.0).frames())
    return [(frame, colorizer.near_gray(depth)) for frame, depth in (frames[10], frames[29])]


@pytest.fixture
def server():
    server = WebServer(WebOptions(port=0, token="view-token"), stats=dict, colorizer=Colorizer()).start()
    yield server
    server.close()


def publish(server: WebServer, scene: tuple[np.ndarray, np.ndarray]) -> None:
    frame, near = scene
    server.hub.publish(apply_colormap(near), frame, near)


@contextmanager
def browser_page(profile: Path, extra: list[str]) -> Iterator:
    """A page of a fresh headless Chromium (user data in ``profile``) with the flags ``extra``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=ARGS + extra,
            viewport={"width": 1000, "height": 1000},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def canvas_shot(page, path: Path) -> np.ndarray:
    page.locator("#canvas3d").screenshot(path=str(path))
    return cv2.imread(str(path))


def mesh_fraction(shot: np.ndarray) -> float:
    """The share of the canvas's pixels that are not its background."""
    return float((np.abs(shot.astype(int) - BACKGROUND).max(axis=2) > 12).mean())


def settled(page, path: Path) -> np.ndarray:
    """A screenshot of the canvas once two in a row agree (the redraw has reached the screen)."""
    shot = canvas_shot(page, path)
    for _ in range(20):
        page.wait_for_timeout(200)
        again = canvas_shot(page, path)
        if np.array_equal(again, shot):
            return shot
        shot = again
    raise AssertionError("the 3D view never settled")


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_3d_view_renders_orbits_zooms_follows_and_asks_only_its_server(tmp_path: Path, server, scenes) -> None:
    origin = f"http://127.0.0.1:{server.port}/"
    publish(server, scenes[0])
    requests: list[str] = []
    with browser_page(tmp_path / "profile", SWIFTSHADER) as page:
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{origin}?token=view-token")
        wait_for(lambda: server.stream_clients == 1)  # the flat stream (one frame: Chromium shows it at the next)

        page.check("#view3d")
        page.wait_for_function("document.getElementById('canvas3d').dataset.frame === '1'", timeout=30_000)
        assert page.locator("#live").is_hidden() and page.locator("#view3d-message").inner_text() == ""
        wait_for(lambda: server.stream_clients == 0)  # the flat stream stopped while 3D is on
        home = settled(page, tmp_path / "home.png")
        assert home.shape[0] > 300 and 0.2 < mesh_fraction(home) < 0.95, "a mesh fills much of the canvas"
        assert len(np.unique(home.reshape(-1, 3), axis=0)) > 1000, "in the frame's many colours"

        box = page.locator("#canvas3d").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(cx - 15 * step, cy + 4 * step)
        page.mouse.up()
        turned = settled(page, tmp_path / "turned.png")
        assert np.abs(turned.astype(int) - home).max(axis=2).astype(bool).mean() > 0.1, "a drag turns the view"

        page.mouse.wheel(0, 600)
        zoomed_out = settled(page, tmp_path / "zoomed.png")
        assert mesh_fraction(zoomed_out) < 0.8 * mesh_fraction(turned), "the wheel zooms out"

        page.dblclick("#canvas3d")
        assert np.array_equal(settled(page, tmp_path / "again.png"), home), "double-click: the first view"

        publish(server, scenes[1])
        page.wait_for_function("document.getElementById('canvas3d').dataset.frame === '2'", timeout=30_000)
        followed = settled(page, tmp_path / "followed.png")
        assert not np.array_equal(followed, home), "the view follows the live stream"
        assert server.viewers_3d.count() == 1

        page.uncheck("#view3d")
        wait_for(lambda: server.stream_clients == 1)  # the flat stream is back
        assert page.evaluate("!document.getElementById('live').hidden") and page.locator("#canvas3d").is_hidden()
        page.wait_for_timeout(300)  # a poll under way may finish
        polls = sum("/rgbd.png" in url for url in requests)
        page.wait_for_timeout(1000)  # (Playwright delivers the request events while it waits)
        assert sum("/rgbd.png" in url for url in requests) == polls, "no polling while 3D is off"
    assert polls >= 2
    assert requests and all(url.startswith(origin) for url in requests), \
        [url for url in requests if not url.startswith(origin)]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "home.png", ARTIFACTS / "web_3d.png")
    shutil.copy(tmp_path / "turned.png", ARTIFACTS / "web_3d_turned.png")


#: What Chromium does when its tab goes to the background (headless Chromium never hides a tab).
SET_HIDDEN = """(hidden) => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_3d_view_stops_polling_while_the_tab_is_hidden(tmp_path: Path, server, scenes) -> None:
    """The page's own visibility handling; the tab switch itself is simulated, as headless
    Chromium keeps every tab visible."""
    publish(server, scenes[0])
    polls: list[str] = []
    with browser_page(tmp_path / "profile", SWIFTSHADER) as page:
        page.on("request", lambda request: polls.append(request.url) if "/rgbd.png" in request.url else None)
        page.goto(server.url())
        page.check("#view3d")
        page.wait_for_function("document.getElementById('canvas3d').dataset.frame === '1'", timeout=30_000)
        page.evaluate(SET_HIDDEN, True)
        page.wait_for_timeout(500)  # a poll under way may finish
        hidden_at = len(polls)
        page.wait_for_timeout(1500)  # (Playwright delivers the request events while it waits)
        assert len(polls) == hidden_at, "no polling while hidden"
        page.evaluate(SET_HIDDEN, False)
        page.wait_for_timeout(1500)
        assert len(polls) >= hidden_at + 3, "polling again once visible"


def test_without_webgl_the_page_says_so_and_keeps_the_flat_view(tmp_path: Path, server, scenes) -> None:
    from playwright.sync_api import expect

    publish(server, scenes[0])
    with browser_page(tmp_path / "profile", ["--disable-3d-apis", "--disable-webgl"]) as page:
        page.goto(server.url())
        wait_for(lambda: server.stream_clients == 1)
        page.check("#view3d")
        expect(page.locator("#view3d-message")).to_contain_text("needs WebGL", timeout=10_000)
        assert page.locator("#canvas3d").is_hidden() and page.evaluate("!document.getElementById('live').hidden")
        assert server.stream_clients == 1
