"""What ``--ray`` decides without a cluster: how it explains what stops it from joining one (Ray's
own exceptions, real sockets on 127.0.0.1) and where actors go. The end-to-end cases, on real
clusters, are in test_batch_ray_failures.py."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

ray = pytest.importorskip("ray")

from livedepth.core.errors import LivedepthError  # noqa: E402
from livedepth.app.ray_connect import check_cluster, connect_error, probe, resolve  # noqa: E402


def test_a_version_mismatch_as_ray_raises_it_is_one_line_naming_both_versions():
    from ray._private.utils import check_version_info

    with pytest.raises(RuntimeError) as raised:  # what ray.init raises when the cluster differs
        check_version_info({"ray_version": "2.59.0", "python_version": "3.10.12"}, "node 10.0.0.2")
    wrapped = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")  # as ray.init passes it on
    wrapped.__cause__ = raised.value
    for exc in (raised.value, wrapped):
        error = str(connect_error(exc, "10.0.0.1:6379"))
        assert "\n" not in error and "Ray 2.59.0 on Python 3.10.12" in error
        assert f"Ray {ray.__version__} on Python " in error and "same Ray and Python versions" in error


def test_a_refused_token_is_one_line_naming_ray_auth_token():
    refused = ray.exceptions.AuthenticationError("RPC error: InvalidAuthToken: Authentication token is missing "
                                                 "or incorrect")
    wrapped = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")
    wrapped.__cause__ = RuntimeError(f"Failed to connect to GCS. Last connection error: {refused}")
    for exc in (refused, wrapped):  # from Ray's GCS client, and from ray.init, which wraps it
        message = str(connect_error(exc, "10.0.0.1:6379"))
        assert "\n" not in message and "InvalidAuthToken" in message and "RAY_AUTH_TOKEN" in message


def test_addresses_are_taken_as_given_and_nonsense_is_one_line(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve("10.0.0.1:6379") == ("10.0.0.1:6379", "10.0.0.1:6379")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.7:6379")
    assert resolve(None) == ("10.0.0.7:6379", "10.0.0.7:6379 (from RAY_ADDRESS)")
    assert resolve("10.0.0.1:6379")[0] == "10.0.0.1:6379", "an explicit address wins over RAY_ADDRESS, as in Ray"
    with pytest.raises(LivedepthError, match="not a Ray address"):
        resolve("nonsense")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_closed_port_is_one_line_from_the_child_probe():
    port = _free_port()
    with pytest.raises(LivedepthError) as raised:
        probe(f"127.0.0.1:{port}", timeout=20)
    assert f"nothing listens at 127.0.0.1:{port}" in str(raised.value) and "ray start --head" in str(raised.value)


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_an_http_server_and_a_silent_one_are_not_ray():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does) and never says a word
    try:
        for port in (server.server_address[1], silent.getsockname()[1]):
            with pytest.raises(LivedepthError, match="answers, but it is not a Ray cluster"):
                check_cluster(f"127.0.0.1:{port}", timeout=2)
    finally:
        server.shutdown()
        server.server_close()
        silent.close()


def test_actors_go_round_the_nodes_and_threads_no_node_has_are_one_line():
    from livedepth.app.ray_pool import placement

    def node(name: str, cpus: float, gpus: float = 0) -> dict:  # an entry of ray.nodes(), the fields used
        return {"NodeID": name, "Resources": {"CPU": cpus, "GPU": gpus}}

    big, small = node("big", 8, gpus=1), node("small", 2)
    assert [n["NodeID"] for n in placement([big, small], 2, False, 10)] == ["big", "small", "big", "big", "big"]
    assert [n["NodeID"] for n in placement([big, small], 2, False, 2)] == ["big", "small"]
    assert [n["NodeID"] for n in placement([big, small], 2, True, 10)] == ["big"]
    with pytest.raises(LivedepthError, match=r"no node of the cluster has 16 CPUs for a worker \(the largest has 8"):
        placement([big, small], 16, False, 10)
