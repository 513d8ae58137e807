"""The web preview under load: slow viewers never slow the pipeline, and memory stays bounded."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from livedepth.inference.estimator import DepthEstimator
from livedepth.web.server import WebOptions
from test_web import SyntheticSource, get, mjpeg_stream, running_pipeline

#: Viewers in another process: on "open", ten connect (nine read everything, one never reads);
#: on "close" they all disconnect and the bytes each received are printed.
VIEWERS = r"""
import socket, sys, threading
port = int(sys.argv[1])
def read(sock, counts, i):
    buf = bytearray(1 << 16)
    while True:
        try:
            n = sock.recv_into(buf)
        except OSError:
            return
        if not n:
            return
        counts[i] += n
for command in sys.stdin:
    if command.strip() == "open":
        counts, socks = [0] * 10, []
        for i in range(10):
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        for i in range(1, 10):
            threading.Thread(target=read, args=(socks[i], counts, i), daemon=True).start()
    else:
        for s in socks:
            s.shutdown(socket.SHUT_RDWR)
            s.close()
        print(" ".join(map(str, counts)), flush=True)
"""


@pytest.fixture(scope="module")
def weights_file(weights_pt: Path) -> Path:
    return weights_pt


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def processed_fps(pipeline, seconds: float) -> float:
    start = pipeline.stats.snapshot()["frames_processed"]
    t0 = time.monotonic()
    time.sleep(seconds)
    return (pipeline.stats.snapshot()["frames_processed"] - start) / (time.monotonic() - t0)


@pytest.mark.slow
def test_ten_viewers_one_stalled_do_not_slow_processing(weights_file: Path) -> None:
    estimator = DepthEstimator(weights=weights_file, size=256, threads=2).load()
    source = SyntheticSource(640, 480, fps=60.0)
    options = WebOptions(port=0, max_clients=12, client_timeout=120)
    with running_pipeline(estimator, source, options) as (pipeline, server):
        time.sleep(3)  # warm-up
        viewers = subprocess.Popen([sys.executable, "-c", VIEWERS, str(server.port)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        without, with_viewers, received = [], [], []
        try:
            for _ in range(6):  # alternate, so that load from elsewhere on the machine hits both alike
                without.append(processed_fps(pipeline, 2.0))
                viewers.stdin.write("open\n")
                viewers.stdin.flush()
                wait_for(lambda: server.stream_clients == 10)
                with_viewers.append(processed_fps(pipeline, 2.0))
                viewers.stdin.write("close\n")
                viewers.stdin.flush()
                received.append([int(n) for n in viewers.stdout.readline().split()])
                wait_for(lambda: server.stream_clients == 0)  # every viewer's slot is freed after it leaves
        finally:
            viewers.kill()
            viewers.wait()
    base, loaded = sum(without) / len(without), sum(with_viewers) / len(with_viewers)
    print(f"processed fps without viewers {without}, with 10 viewers {with_viewers}")
    assert base > 1
    assert loaded >= 0.9 * base, (without, with_viewers)
    for counts in received:
        assert counts[0] == 0 and min(counts[1:]) > 20_000, counts  # nine viewers got frames


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_two_thousand_frames_keep_rss_bounded(weights_file: Path) -> None:
    estimator = DepthEstimator(weights=weights_file, size=32, threads=2).load()
    source = SyntheticSource(64, 48, frames=2000, paced=False)
    samples = {}
    with running_pipeline(estimator, source, WebOptions(port=0)) as (pipeline, server):
        stop = threading.Event()

        def view() -> None:
            try:
                for _ in mjpeg_stream(server.port):
                    if stop.is_set():
                        return
            except (AssertionError, OSError):  # the run ended and closed the stream
                return

        wait_for(lambda: server.hub.frames.newest()[0] > 0, 60)
        viewers = [threading.Thread(target=view, daemon=True) for _ in range(2)]
        for viewer in viewers:
            viewer.start()
        while pipeline.stats.snapshot()["frames_processed"] < 1990:
            if pipeline.stats.snapshot()["frames_processed"] >= 200 and "start" not in samples:
                samples["start"] = rss_mb()
            assert get(server.port, "/stats")[0] == 200
            assert get(server.port, "/snapshot.jpg")[0] == 200
            time.sleep(0.05)
        stop.set()
        while not pipeline.stages.stopping:
            time.sleep(0.05)
        samples["end"] = rss_mb()
    final = pipeline.stats.snapshot()
    print(f"RSS after 200 frames {samples['start']:.1f} MB, after {final['frames_processed']} {samples['end']:.1f} MB")
    assert final["frames_processed"] == 2000
    assert samples["end"] - samples["start"] < 20
