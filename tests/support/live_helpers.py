"""Helpers for the live tests: a tiny MJPEG-over-HTTP server process on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

MJPEG_SERVER = r'''
import sys, time, cv2, numpy as np
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        i = 0
        while True:
            img = np.zeros((120, 160, 3), np.uint8)
            cv2.circle(img, (20 + (i * 5) % 120, 60), 15, (0, 200, 255), -1)
            data = cv2.imencode(".jpg", img)[1].tobytes()
            head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
            self.wfile.write(head + data + b"\r\n")
            self.wfile.flush()
            i += 1
            time.sleep(0.05)

ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mjpeg_server(port: int) -> subprocess.Popen:
    """Serve an endless MJPEG stream at http://127.0.0.1:PORT/ (20 fps) from a child process."""
    proc = subprocess.Popen([sys.executable, "-c", MJPEG_SERVER, str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("MJPEG test server did not start")


def kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(10)
