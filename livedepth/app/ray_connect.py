"""Connecting the driver to Ray for ``--ray [ADDRESS]``: bounded in time, every failure one line.

The address follows ``ray.init``: plain ``--ray`` uses ``$RAY_ADDRESS``, else the cluster started
with ``ray start`` on this machine, else it starts a local Ray instance for this batch (what a
Ray user expects from ``ray.init()``; the caller shuts it down afterwards). ``--ray auto``
insists on a running cluster, ``--ray HOST:PORT`` names one.

Before ``ray.init`` the address is probed in a child process that is killed after ``timeout``
seconds, because Ray's own client retries an unreachable address for minutes and logs every
attempt to stderr: a TCP connection, then an HTTP/2 greeting (Ray speaks gRPC), then Ray's GCS
client with this machine's token, and the cluster's Ray and Python versions against ours.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import re
import socket

from livedepth.core.errors import LivedepthError

log = logging.getLogger(__name__)

#: How long connecting to a cluster may take, in seconds.
CONNECT_TIMEOUT_S = 30.0
#: What ``ray.init`` is given besides the address: Ray's own log lines stay out of ours.
INIT_OPTIONS = {"logging_level": logging.WARNING, "log_to_driver": False}
START_FIX = "start one with `ray start --head`, or give its address: --ray HOST:PORT or RAY_ADDRESS=HOST:PORT"
TOKEN_FIX = ("set RAY_AUTH_TOKEN to the cluster's token (`ray get-auth-token` on the head prints it) "
             "and RAY_AUTH_MODE=token")
# The client connection preface of HTTP/2 and an empty SETTINGS frame; a gRPC server answers
# with its own SETTINGS frame (frame type 4 in the 4th byte of the 9-byte frame header).
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def import_ray():
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise LivedepthError("--ray needs Ray: pip install 'livedepth[ray]' (on every node)") from None
    return ray


def connect(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Connect this process to Ray the way ``--ray [ADDRESS]`` asks (``None``: plain ``--ray``).

    Returns True when it started a local instance, which the caller stops with ``ray.shutdown()``.
    """
    ray = import_ray()
    target, label = resolve(address)
    if target is None:
        log.info("ray: no running cluster (RAY_ADDRESS is unset and no `ray start` cluster runs here): "
                 "starting a local Ray instance for this batch")
        try:
            ray.init(**INIT_OPTIONS)
        except Exception as exc:  # noqa: BLE001 - whatever Ray raises becomes one line
            raise LivedepthError(f"--ray: cannot start a local Ray instance: {_last_line(exc)}") from None
        return True
    if "://" not in target:  # a Ray Client address (ray://) has its own timeouts
        probe(target, label, timeout)
    try:
        ray.init(address=target, **INIT_OPTIONS)
    except Exception as exc:  # noqa: BLE001 - whatever Ray raises becomes one line
        raise connect_error(exc, label) from None
    return False


def resolve(address: str | None) -> tuple[str | None, str]:
    """(the address ``ray.init(address)`` connects to, or None when it starts a local instance;
    the address as the user gave it and where it came from, for messages)."""
    from ray._private.services import canonicalize_bootstrap_address

    given, origin = address, ""
    if address in (None, "auto"):
        given = os.environ.get("RAY_ADDRESS") or address
        origin = " (from RAY_ADDRESS)" if given != address else " (found on this machine)"
    if given is not None and "://" in given:
        return given, given + origin
    try:
        target = canonicalize_bootstrap_address(given)  # localhost becomes this machine's address, as in Ray
        return target, f"{given if given not in (None, 'auto') else target}{origin}"
    except ConnectionError:
        raise LivedepthError(f"--ray auto: no running Ray cluster found: {START_FIX}") from None
    except ValueError:
        raise LivedepthError(f"--ray: {given}{origin} is not a Ray address (HOST:PORT, e.g. 10.0.0.1:6379)") from None


def probe(address: str, label: str | None = None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise the one-line :class:`LivedepthError` that explains why ``address`` is not a Ray
    cluster this machine can join (``label``: the address in messages); return when it is.
    Takes ``timeout`` seconds at most."""
    label = label or address
    context = mp.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_probe_child, args=(address, label, timeout, send), name="livedepth-ray-probe",
                            daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise LivedepthError(f"--ray: no answer from the Ray cluster at {label} within {timeout:.0f} s")
        try:
            error = receive.recv()
        except EOFError:  # the child died without a word
            child.join(5)
            error = f"--ray: checking {label} failed (exit code {child.exitcode})"
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
    if error is not None:
        raise LivedepthError(error)


def _probe_child(address: str, label: str, timeout: float, send) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # Ray's C++ client logs each retry to stderr; the answer goes through the pipe
    try:
        check_cluster(address, label, timeout)
    except LivedepthError as exc:
        send.send(str(exc))
    else:
        send.send(None)


def check_cluster(address: str, label: str | None = None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """The checks of :func:`probe`, in this process (Ray's client may block for minutes)."""
    where = label or address
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=min(timeout / 2, 10.0)) as sock:
            grpc = _speaks_http2(sock)
    except ConnectionRefusedError:
        raise LivedepthError(f"--ray: nothing listens at {where}: start the head there (`ray start --head "
                             f"--port={port}`) or give the right address (--ray HOST:PORT or RAY_ADDRESS)") from None
    except OSError as exc:
        raise LivedepthError(f"--ray: cannot reach {where}: {exc.strerror or exc}") from None
    if not grpc:
        raise LivedepthError(f"--ray: {where} answers, but it is not a Ray cluster: give the head's address "
                             "(port 6379 unless `ray start --head --port` chose another)")
    from ray._common.usage.usage_lib import get_cluster_metadata
    from ray._private.utils import check_version_info
    from ray._raylet import GcsClient

    try:
        check_version_info(get_cluster_metadata(GcsClient(address=address)), "this machine")
    except Exception as exc:  # noqa: BLE001 - whatever Ray raises becomes one line
        raise connect_error(exc, where) from None


def _speaks_http2(sock: socket.socket) -> bool:
    try:
        sock.sendall(_HTTP2_HELLO)
        head = b""
        while len(head) < 9:
            chunk = sock.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except OSError:  # reset, or silent until the timeout: not a gRPC server
        return False
    return head[3] == 4


def connect_error(exc: BaseException, where: str) -> LivedepthError:
    """One line for what Ray raised while connecting to the cluster at ``where`` (the cause chain
    is searched: ``ray.init`` wraps the GCS client's error in a ConnectionError)."""
    text = "\n".join(_chain_texts(exc))
    if "InvalidAuthToken" in text or "Unauthenticated" in text or type(exc).__name__ == "AuthenticationError":
        return LivedepthError(f"--ray: the Ray cluster at {where} refused this machine's token (InvalidAuthToken): "
                              f"{TOKEN_FIX}")
    versions = re.findall(r"Ray: (\S+)\s+Python: (\S+)", text)
    if "Version mismatch" in text and len(versions) == 2:
        (cluster_ray, cluster_python), (our_ray, our_python) = versions
        return LivedepthError(f"--ray: the Ray cluster at {where} runs Ray {cluster_ray} on Python {cluster_python}, "
                              f"this machine Ray {our_ray} on Python {our_python}: the driver and every node need "
                              "the same Ray and Python versions")
    if "Could not find any running Ray instance" in text:
        return LivedepthError(f"--ray: no running Ray cluster found: {START_FIX}")
    if "Timed out while waiting for GCS" in text:
        return LivedepthError(f"--ray: {where} accepts connections, but no Ray cluster answers there")
    return LivedepthError(f"--ray: cannot connect to the Ray cluster at {where}: {_last_line(exc)}")


def _chain_texts(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield f"{type(exc).__name__}: {exc}"
        exc = exc.__cause__ or exc.__context__


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
