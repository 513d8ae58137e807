"""The 3D view's data over real HTTP: /rgbd.png is the newest frame's colour and normalised depth,
encoded lazily once per frame, behind the token and the viewer limit; the page's script ships inside."""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from livedepth.render.colorize import Colorizer, apply_colormap
from livedepth.core.frames import Rendered
from livedepth.run.pipeline import LivePipeline
from livedepth.io.sinks import Sink
from livedepth.core.stages import Latest
from livedepth.web.view3d import RGBD_LONG_SIDE, rgbd_image
from livedepth.web.server import NewestEncoded, WebOptions, WebServer
from test_web import SyntheticSource, estimator, get, running_pipeline  # noqa: F401 - estimator: a fixture


class Recorder(Sink):
    """Keeps every rendered frame (the pipeline calls it before the web sink)."""

    def __init__(self) -> None:
        self.rendered: list[Rendered] = []

    def write(self, rendered: Rendered) -> None:
        self.rendered.append(rendered)


def decode(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def test_rgbd_png_is_the_newest_frame_and_the_depth_its_colours_came_from(estimator) -> None:  # noqa: F811
    recorder = Recorder()
    with running_pipeline(estimator, SyntheticSource(320, 240, fps=15.0), WebOptions(port=0),
                          sinks=(recorder,)) as (pipeline, server):
        seen: dict[int, bytes] = {}
        deadline = time.monotonic() + 60
        while len(seen) < 3:
            assert time.monotonic() < deadline, "the 3D data never followed the stream"
            status, headers, body = get(server.port, "/rgbd.png")
            if status == 503:  # before the first frame
                time.sleep(0.05)
                continue
            assert status == 200 and headers["Content-Type"] == "image/png"
            seen[int(headers["X-Livedepth-Frame"])] = body
            time.sleep(0.1)
        recorded = list(recorder.rendered)
    assert len(set(seen.values())) == 3, "each new frame number brings a new image"
    for number, png in seen.items():
        image = decode(png)
        assert image.shape == (120, 2 * RGBD_LONG_SIDE, 3), "160x120 colour | 160x120 depth for a 4:3 camera"
        colour, grey = image[:, :RGBD_LONG_SIDE], image[:, RGBD_LONG_SIDE:]
        assert (grey == grey[..., :1]).all(), "the depth half is grey"
        rendered = recorded[number - 1]  # the web sink's n-th frame is the pipeline's n-th
        assert np.array_equal(colour, cv2.resize(rendered.frame.image, (160, 120), interpolation=cv2.INTER_AREA))
        assert np.array_equal(grey[..., 0], cv2.resize(rendered.near, (160, 120), interpolation=cv2.INTER_AREA))
        assert np.array_equal(rendered.image, apply_colormap(rendered.near, "inferno")), \
            "the stream's colours come from the same normalised grey"


class CountingNormalizer:
    """A real normaliser that counts its steps."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def bounds(self, depth: np.ndarray) -> tuple[float, float]:
        self.calls += 1
        return self.inner.bounds(depth)

    def reset(self) -> None:
        self.inner.reset()


def test_the_live_run_normalises_each_frame_once_and_hands_on_that_grey(estimator) -> None:  # noqa: F811
    colorizer = Colorizer(normalize="stable", invert=True, colormap="gray")
    counting = colorizer.normalizer = CountingNormalizer(colorizer.normalizer)
    recorder = Recorder()
    LivePipeline(SyntheticSource(160, 120, frames=6, paced=False), estimator, colorizer, [recorder]).run()
    assert recorder.rendered and counting.calls == len(recorder.rendered)
    for rendered in recorder.rendered:
        assert rendered.near.dtype == np.uint8 and rendered.near.shape == rendered.depth.shape
        assert np.array_equal(rendered.image[..., 0], 255 - rendered.near), "invert flips the colours only"
        nearest = np.unravel_index(np.argmax(rendered.depth), rendered.depth.shape)
        assert rendered.near[nearest] == 255, "near stays 255 nearest whatever --invert says"


def test_rgbd_image_keeps_the_aspect_and_never_upscales() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (480, 270, 3), np.uint8)
    near = np.tile(np.arange(270, dtype=np.uint8), (480, 1))
    assert rgbd_image(frame, near).shape == (160, 2 * 90, 3), "portrait: 160 on the long side"
    assert rgbd_image(frame[:50, :40], near[:50, :40]).shape == (50, 80, 3)
    odd = rgbd_image(frame[:101, :257], near[:101, :257])
    assert odd.shape == (63, 320, 3)


def test_encoding_is_lazy_and_once_per_frame() -> None:
    frames: Latest[int] = Latest()
    encoded: list[int] = []
    newest = NewestEncoded(frames, lambda value: encoded.append(value) or str(value).encode())
    assert newest.get() is None
    for value in range(5):
        frames.put(value)
    assert encoded == [], "publishing encodes nothing"
    results = []
    threads = [threading.Thread(target=lambda: results.append(newest.get())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert encoded == [4] and set(results) == {(5, b"4")}, "eight viewers, one encode of the newest"
    frames.put(5)
    assert newest.get() == (6, b"5") and encoded == [4, 5]


@pytest.fixture
def rgbd_server():
    server = WebServer(WebOptions(host="0.0.0.0", port=0, token="s3cret", max_clients=2),
                       stats=dict, colorizer=Colorizer()).start()
    yield server
    server.close()


def publish_gradient(server: WebServer, shift: int = 0) -> np.ndarray:
    """Publish a frame (green ramp across, shifted by ``shift``) with depth nearest at the bottom;
    returns the RGBD image expected for it."""
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[..., 1] = (np.arange(320) + shift) % 256
    near = np.tile(np.linspace(0, 255, 240, dtype=np.uint8)[:, None], (1, 320))
    server.hub.publish(frame, frame, near)
    area = cv2.INTER_AREA
    return np.hstack([cv2.resize(frame, (160, 120), interpolation=area),
                      cv2.cvtColor(cv2.resize(near, (160, 120), interpolation=area), cv2.COLOR_GRAY2BGR)])


def test_rgbd_and_script_need_the_token(rgbd_server) -> None:
    port = rgbd_server.port
    assert get(port, "/rgbd.png?token=s3cret")[::2] == (503, b"error: no frame yet\n")
    expected = publish_gradient(rgbd_server)
    for path in ("/rgbd.png", "/view3d.js"):
        assert get(port, path)[::2] == (401, b"error: missing token: add ?token=TOKEN to the address\n")
        assert get(port, path + "?token=wrong")[::2] == (403, b"error: wrong token\n")
    status, headers, body = get(port, "/rgbd.png", {"Authorization": "Bearer s3cret"})
    assert status == 200 and headers["X-Livedepth-Frame"] == "1"
    assert np.array_equal(decode(body), expected)
    status, headers, script = get(port, "/view3d.js?token=s3cret")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"livedepthView3d" in script


def test_the_page_and_its_script_name_no_other_host(rgbd_server) -> None:
    for path in ("/", "/view3d.js"):
        body = get(rgbd_server.port, path + "?token=s3cret")[2].decode()
        assert "http:" not in body and "https:" not in body, path
        assert not re.search(r"""(src|href)\s*=\s*["']//""", body), f"{path} loads only from its server"


def get_from(source: str, port: int, path: str) -> tuple[int, bytes]:
    """A GET sent from the loopback address ``source`` (each is a different viewer to the server)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_3d_viewers_count_in_the_stats_and_share_the_viewer_limit(rgbd_server) -> None:
    port = rgbd_server.port
    rgbd_server.viewers_3d.window = 0.5
    publish_gradient(rgbd_server)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as stream:  # one flat-stream viewer
        stream.sendall(b"GET /stream.mjpg?token=s3cret HTTP/1.1\r\nHost: x\r\n\r\n")
        assert stream.recv(12) == b"HTTP/1.1 200"
        assert get_from("127.0.0.2", port, "/rgbd.png?token=s3cret")[0] == 200
        assert get_from("127.0.0.2", port, "/rgbd.png?token=s3cret")[0] == 200, "the same viewer polls again"
        assert get_from("127.0.0.3", port, "/rgbd.png?token=s3cret") == (503, b"error: too many viewers (limit 2)\n")
        assert get(port, "/stats?token=s3cret")[2].count(b'"viewers_3d": 1') == 1
        assert get(port, "/stream.mjpg?token=s3cret")[0] == 503, "a 3D viewer takes a place too"
        time.sleep(0.6)  # the 3D viewer stopped polling
        assert get_from("127.0.0.3", port, "/rgbd.png?token=s3cret")[0] == 200
    deadline = time.monotonic() + 10
    while rgbd_server.stream_clients and time.monotonic() < deadline:  # the closed stream's place is freed
        time.sleep(0.02)
    expected = publish_gradient(rgbd_server, shift=50)
    status, headers, body = get(port, "/rgbd.png?token=s3cret")
    assert status == 200 and headers["X-Livedepth-Frame"] == "2" and np.array_equal(decode(body), expected)


def test_photo_only_server_has_no_3d_data() -> None:
    server = WebServer(WebOptions(port=0)).start()
    try:
        status, _, body = get(server.port, "/rgbd.png")
        assert status == 404 and body == b"error: no live stream (started without a camera or input)\n"
    finally:
        server.close()
