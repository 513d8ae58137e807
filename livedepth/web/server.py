"""Web preview: the live depth stream as MJPEG, live stats, layout controls and photo uploads.

Built on the standard library's ``ThreadingHTTPServer``: one thread per connection, which is
what an MJPEG stream needs (each client blocks in its own ``send``), and no extra dependency
to install on a Raspberry Pi. The pipeline only ever hands the newest frame to a
:class:`FrameHub`; each stream client sends the newest JPEG when it is ready for one, so a
slow client skips frames and never slows the pipeline or the other clients.
"""

from __future__ import annotations

import email.parser
import email.policy
import hmac
import ipaddress
import json
import logging
import math
import select
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Generic, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import cv2
import numpy as np

from livedepth.core.errors import LivedepthError
from livedepth.core.frames import Rendered
from livedepth.core.predictor import Predictor
from livedepth.core.stages import Latest
from livedepth.io.sinks import Sink
from livedepth.render.colorize import LAYOUTS, Colorizer, check_colormap, check_layout
from livedepth.settings import StereoSettings, WebSettings
from livedepth.web.addresses import reachable_hosts
from livedepth.web.uploads import HTTPError, UploadLimits, UploadWorker
from livedepth.web.view3d import RecentViewers, encode_rgbd_png

log = logging.getLogger(__name__)

#: Colormaps offered by the page (any OpenCV name works through the API).
PAGE_COLORMAPS = ("inferno", "magma", "plasma", "turbo", "viridis", "jet", "bone", "gray")
BOUNDARY = "livedepthframe"
T = TypeVar("T")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (only these are served without a token)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, no_auth: bool) -> None:
    """Refuse a non-loopback address without a token unless ``no_auth`` says so explicitly."""
    if token is not None and not token:
        raise LivedepthError("--token must not be empty")
    if is_loopback(host) or token:
        return
    if not no_auth:
        raise LivedepthError(
            f"serving on {host or 'all interfaces'} needs --token TOKEN (or --no-auth to allow anyone on the network)"
        )
    log.warning("serving on %s with no token: anyone who can reach this port sees the camera", host or "*")


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT`` -> (host, port)."""
    host, sep, port = str(text).rpartition(":")
    if not sep:
        host = default_host
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        raise LivedepthError(f"--serve needs [HOST:]PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise LivedepthError(f"port out of range: {number}")
    return host, number


# --- frames ----------------------------------------------------------------------------------


class NewestEncoded(Generic[T]):
    """The newest value of a :class:`Latest`, encoded at most once, when a viewer first asks."""

    def __init__(self, values: Latest[T], encode: Callable[[T], bytes]) -> None:
        self.values = values
        self._encode = encode
        self._lock = threading.Lock()
        self._encoded: tuple[int, bytes] | None = None

    def get(self) -> tuple[int, bytes] | None:
        """(sequence number, encoded bytes) of the newest value, or None before the first."""
        with self._lock:
            seq, value = self.values.newest()
            if value is None:
                return None
            if self._encoded is None or self._encoded[0] != seq:
                self._encoded = seq, self._encode(value)
            return self._encoded


class FrameHub:
    """The newest rendered frame for every viewer, JPEG-encoded at most once, on demand; and, for
    the 3D view, the newest frame with its normalised depth, PNG-encoded likewise."""

    def __init__(self, jpeg_quality: int = 80) -> None:
        self.jpeg_quality = int(jpeg_quality)
        self.frames: Latest[np.ndarray] = Latest()
        self.rgbd_frames: Latest[tuple[np.ndarray, np.ndarray]] = Latest()
        self._jpeg = NewestEncoded(self.frames, self._encode_jpeg)
        self._rgbd = NewestEncoded(self.rgbd_frames, encode_rgbd_png)

    def publish(self, image: np.ndarray, frame: np.ndarray | None = None, near: np.ndarray | None = None) -> None:
        """Make ``image`` (BGR uint8) the newest frame; never blocks on viewers. With the input
        ``frame`` and its ``near`` grey (:attr:`Rendered.near`), the 3D view gets them too."""
        self.frames.put(image)
        if frame is not None and near is not None:
            self.rgbd_frames.put((frame, near))

    def jpeg(self) -> tuple[int, bytes] | None:
        """(sequence number, JPEG) of the newest frame, or None before the first frame."""
        return self._jpeg.get()

    def rgbd_png(self) -> tuple[int, bytes] | None:
        """(sequence number, PNG) of the newest frame's colour and depth (:mod:`livedepth.web.view3d`)."""
        return self._rgbd.get()

    def _encode_jpeg(self, image: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()


# --- uploads ---------------------------------------------------------------------------------


def _multipart_file(body: bytes, content_type: str) -> bytes:
    """The first file part of a ``multipart/form-data`` body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
    )
    for part in message.iter_parts():
        if part.get_filename() is not None or part.get_content_maintype() == "image":
            return part.get_payload(decode=True) or b""
    raise HTTPError(400, "no file in the upload form")


# --- server ----------------------------------------------------------------------------------


def _finite(value):
    """JSON-safe stats: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class _Server(ThreadingHTTPServer):
    """A thread per connection, joined on close; a failed connection is logged at debug level.

    ``close_connections`` ends idle keep-alive connections at once, so closing the server
    never waits for a client's timeout.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, *args, **kwargs) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        if self.server_address[0] == "::":  # every interface means the IPv4 ones too, whatever the system's default
            with suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class WebServer:
    """The HTTP server. ``start()`` serves on a background thread; ``close()`` ends it.

    ``stats`` gives the live run's statistics and ``colorizer`` is the live run's colorizer,
    which the page may change (both None without a live source). With ``estimator`` (the live
    run's), photo uploads are served by an :class:`~livedepth.web.uploads.UploadWorker` process
    that builds the same model and renders the 3D layouts with the run's ``stereo`` settings. The
    live frames arrive through :attr:`hub`.
    """

    def __init__(
        self,
        web: WebSettings,
        *,
        estimator: Predictor | None = None,
        stats: Callable[[], dict] | None = None,
        colorizer: Colorizer | None = None,
        stereo: StereoSettings = StereoSettings(),
    ) -> None:
        check_bind(web.host, web.token, web.no_auth)
        self.web = web
        self.max_upload_bytes = int(web.max_upload_mb * 2**20)
        self.hub = FrameHub(web.jpeg_quality)
        self.stats = stats
        self.colorizer = colorizer
        self._slots = threading.BoundedSemaphore(max(1, web.max_clients))
        # photo uploads: decoded, run and encoded in a background-priority worker process (with
        # [web] uploads off there is none, and nothing ever starts one)
        self.uploads = None if estimator is None or not web.uploads else UploadWorker(
            estimator.model_settings(), UploadLimits(int(web.max_upload_megapixels * 1e6), web.upload_max_side),
            web.upload_idle_s, stereo)
        self._clients = 0
        self._clients_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._page = resources.files("livedepth.web").joinpath("static/index.html").read_bytes()
        self._view3d_script = resources.files("livedepth.web").joinpath("static/view3d.js").read_bytes()
        self.viewers_3d = RecentViewers()  # they poll /rgbd.png: counted with the stream's viewers
        server_class = _Server6 if ":" in web.host else _Server
        try:
            self.httpd = server_class((web.host, web.port), _Handler)
        except OSError as exc:
            raise LivedepthError(f"cannot listen on {web.host}:{web.port}: {exc.strerror or exc}") from None
        self.httpd.app = self

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def live(self) -> bool:
        return self.stats is not None

    @property
    def stream_clients(self) -> int:
        return self._clients

    def url(self) -> str:
        """The page's address (loopback when serving every interface), with the token if there is one."""
        return self.urls()[0]

    def urls(self) -> list[str]:
        """Every address the page is served at (see :func:`~livedepth.web.addresses.reachable_hosts`),
        loopback first, with the token if there is one."""
        host = self.web.host
        dual_stack = host == "::" and not self.httpd.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        query = f"?token={quote(self.web.token, safe='')}" if self.web.token else ""
        return [f"http://{f'[{h}]' if ':' in h else h}:{self.port}/{query}" for h in reachable_hosts(host, dual_stack)]

    def start(self) -> WebServer:
        """Serve on a daemon thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="livedepth-web", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, end the streams and connections, join their threads, free the port."""
        self.hub.frames.close()
        if self.uploads is not None:
            self.uploads.close()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.close_connections()
        self.httpd.server_close()

    # -- handlers (called from _Handler on a connection thread) ------------------------------

    def check_token(self, supplied: str | None) -> None:
        token = self.web.token
        if not token:
            return
        if supplied is None:
            raise HTTPError(401, "missing token: add ?token=TOKEN to the address")
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            raise HTTPError(403, "wrong token")

    def settings(self) -> dict:
        colorizer = self.colorizer
        return {
            "live": self.live,
            "layout": colorizer.layout if colorizer else "depth",
            "colormap": colorizer.colormap if colorizer else "inferno",
            "layouts": list(LAYOUTS),
            "colormaps": list(PAGE_COLORMAPS),
            "upload": self.uploads is not None,
            "max_upload_bytes": self.max_upload_bytes,
        }

    def change_settings(self, values: dict) -> dict:
        if self.colorizer is None:
            raise HTTPError(404, "no live stream to change")
        try:
            layout = check_layout(str(values["layout"])) if "layout" in values else None
            colormap = check_colormap(str(values["colormap"])) if "colormap" in values else None
        except LivedepthError as exc:
            raise HTTPError(400, str(exc)) from None
        colorizer = self.colorizer
        if layout:
            colorizer.layout = layout
        if colormap:
            colorizer.colormap = colormap
        return self.settings()

    def depth_png(self, data: bytes, layout: str, colormap: str) -> bytes:
        if not self.web.uploads:
            raise HTTPError(404, "photo upload is turned off on this server")
        if self.uploads is None:
            raise HTTPError(503, "no model loaded")
        try:
            check_layout(layout)
            check_colormap(colormap)
        except LivedepthError as exc:
            raise HTTPError(400, str(exc)) from None
        return self.uploads.depth_png(data, layout, colormap)

    def stream_slot(self) -> bool:
        if self._clients + self.viewers_3d.count() >= self.web.max_clients:
            return False
        if not self._slots.acquire(blocking=False):
            return False
        with self._clients_lock:
            self._clients += 1
        return True

    def release_slot(self) -> None:
        with self._clients_lock:
            self._clients -= 1
        self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    """Routes one connection's requests to the :class:`WebServer` (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "livedepth"
    sys_version = ""

    def setup(self) -> None:
        self.timeout = self.server.app.web.client_timeout
        super().setup()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        app: WebServer = self.server.app
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        routes = {
            ("GET", "/"): self._page,
            ("GET", "/index.html"): self._page,
            ("GET", "/stream.mjpg"): self._stream,
            ("GET", "/snapshot.jpg"): self._snapshot,
            ("GET", "/rgbd.png"): self._rgbd,
            ("GET", "/view3d.js"): self._script,
            ("GET", "/stats"): self._stats,
            ("GET", "/settings"): self._settings,
            ("POST", "/settings"): self._settings,
            ("POST", "/depth"): self._depth,
        }
        try:
            app.check_token(query.get("token") or self._header_token())
            route = routes.get(("GET" if method == "HEAD" else method, url.path))
            if route is None:
                if any(path == url.path for _, path in routes):
                    raise HTTPError(405, f"{method} not allowed on {url.path}")
                raise HTTPError(404, f"not found: {url.path}")
            route(app, query)
        except HTTPError as exc:
            self._send_error(exc.status, str(exc))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - never a traceback in a response
            log.exception("web request %s %s failed", method, url.path)
            self._send_error(500, "internal error (see the server's log)")

    def _header_token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return self.headers.get("X-Livedepth-Token")

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, status: int, message: str) -> None:
        try:
            self._send(status, f"error: {message}\n".encode(), "text/plain; charset=utf-8")
        except OSError:
            self.close_connection = True

    def _send_json(self, data: dict) -> None:
        self._send(200, json.dumps(_finite(data)).encode(), "application/json")

    def _read_body(self, limit: int) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise HTTPError(411, "the upload needs a Content-Length")
        if int(length) > limit:
            self.close_connection = True  # what is left unread must not be parsed as a request
            self._discard(min(int(length), 4 * limit))
            raise HTTPError(413, f"upload too large: {int(length)} bytes, the limit is {limit}")
        return self.rfile.read(int(length))

    def _discard(self, count: int) -> None:
        """Read and drop up to ``count`` body bytes, so a client still sending gets the reply."""
        while count > 0:
            chunk = self.rfile.read(min(count, 1 << 16))
            if not chunk:
                return
            count -= len(chunk)

    # -- routes --------------------------------------------------------------------------------

    def _page(self, app: WebServer, query: dict) -> None:
        if app.uploads is not None:
            app.uploads.warm()  # a photo may follow: have its model ready
        self._send(200, app._page, "text/html; charset=utf-8")

    def _stats(self, app: WebServer, query: dict) -> None:
        stats = app.stats() if app.stats is not None else {}
        self._send_json({**stats, "live": app.live, "stream_clients": app.stream_clients,
                         "viewers_3d": app.viewers_3d.count()})

    def _settings(self, app: WebServer, query: dict) -> None:
        if self.command == "POST":
            body = self._read_body(4096)
            try:
                values = json.loads(body or b"{}") if body.strip() else dict(query)
            except ValueError:
                raise HTTPError(400, "settings must be a JSON object") from None
            if not isinstance(values, dict):
                raise HTTPError(400, "settings must be a JSON object")
            self._send_json(app.change_settings(values))
        else:
            self._send_json(app.settings())

    def _depth(self, app: WebServer, query: dict) -> None:
        body = self._read_body(app.max_upload_bytes)
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            body = _multipart_file(body, content_type)
        png = app.depth_png(body, query.get("layout", "depth"), query.get("colormap", "inferno"))
        self._send(200, png, "image/png")

    def _script(self, app: WebServer, query: dict) -> None:
        self._send(200, app._view3d_script, "text/javascript; charset=utf-8")

    def _snapshot(self, app: WebServer, query: dict) -> None:
        self._send_newest(app, app.hub.jpeg, "image/jpeg")

    def _rgbd(self, app: WebServer, query: dict) -> None:
        room = app.web.max_clients - app.stream_clients
        if app.live and not app.viewers_3d.visit(self.client_address[0], room):
            raise HTTPError(503, f"too many viewers (limit {app.web.max_clients})")
        self._send_newest(app, app.hub.rgbd_png, "image/png")

    def _send_newest(self, app: WebServer, newest: Callable[[], tuple[int, bytes] | None], content_type: str) -> None:
        """The newest frame from ``newest``, with its sequence number in ``X-Livedepth-Frame``."""
        if not app.live:
            raise HTTPError(404, "no live stream (started without a camera or input)")
        encoded = newest()
        if encoded is None:
            raise HTTPError(503, "no frame yet")
        self._send(200, encoded[1], content_type, X_Livedepth_Frame=str(encoded[0]))

    def _stream(self, app: WebServer, query: dict) -> None:
        if not app.live:
            raise HTTPError(404, "no live stream (started without a camera or input)")
        if not app.stream_slot():
            raise HTTPError(503, f"too many viewers (limit {app.web.max_clients})")
        try:
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            self._stream_frames(app.hub, app.web.stream_fps)
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            pass  # the viewer left or stalled past client_timeout
        finally:
            app.release_slot()

    def _stream_frames(self, hub: FrameHub, max_fps: float) -> None:
        sent = 0
        interval = 1.0 / max_fps if max_fps > 0 else 0.0
        next_at = 0.0
        while not hub.frames.closed and not self._peer_closed():
            if not hub.frames.wait_newer(sent, timeout=0.5):
                continue
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at = time.monotonic() + interval
            newest = hub.jpeg()
            if newest is None:
                continue
            sent, data = newest
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
            self.wfile.write(head.encode() + data + b"\r\n")


    def _peer_closed(self) -> bool:
        """True once the viewer has closed its end (so its slot is freed without waiting for a send to fail)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except ValueError:  # a descriptor beyond select's limit: rely on the next send failing
            return False
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


class WebSink(Sink):
    """Live-pipeline output stage that publishes every rendered frame to a :class:`WebServer`."""

    def __init__(self, server: WebServer) -> None:
        self.server = server

    def write(self, rendered: Rendered) -> None:
        self.server.hub.publish(rendered.image, rendered.frame.image, rendered.near)

    def close(self) -> None:
        self.server.close()
