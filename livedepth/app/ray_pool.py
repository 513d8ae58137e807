"""Batch conversion on a Ray cluster: the same per-file work as the local pool, on many machines.

An actor per slot of ``threads`` CPUs (``num_gpus=1`` with ``--device cuda``) loads the model
once and converts file after file; an actor pool rather than Ray Data, because the unit of work
is a whole file with its own container, timestamps and audio, and each actor must keep one
estimator across files. The weights travel once through the object store and are checked by
SHA-256 on every node. With shared storage (the default) actors read and write the paths
themselves; with ``transfer`` the driver ships each input's bytes through the object store and
writes the finished files the actor sends back, atomically.

Actors are placed node by node (as many as each node has ``threads`` CPUs for). A node where
they cannot start (livedepth or one of its packages missing there: ModuleNotFoundError) is named
in the log and left out; when no node can, the batch stops with one line. A file whose actor
dies (its node lost) is given to another actor, up to ``RETRIES`` times; a stopped or failed
file leaves no partial output. ``stop()`` (Ctrl+C) cancels what has not started, asks running
files to stop, and keeps every finished output. While the head does not answer, no new file
starts; after ``HEAD_LOST_S`` seconds the batch stops the same way and says which files are
left; a rerun converts only those.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from livedepth.app.batch import FileResult, Job, convert_job, peak_rss_mb
from livedepth.app.ray_connect import CONNECT_TIMEOUT_S, connect, import_ray
from livedepth.core.errors import LivedepthError
from livedepth.core.files import cache_dir, write_atomically
from livedepth.model import registry
from livedepth.run.convert import partial_path
from livedepth.settings import Settings

log = logging.getLogger(__name__)

#: How many times a file is given to another actor after its actor died.
RETRIES = 2
#: How long the driver waits for running files to stop after ``stop()``.
STOP_GRACE_S = 30.0
#: How long the head (its GCS port) may refuse connections before the batch stops.
HEAD_LOST_S = 10.0
#: How long the driver then waits for the files still running on other nodes to stop.
HEAD_LOST_GRACE_S = 15.0


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ConvertActor:
    """One worker slot on a node: the model loaded once, then file after file.

    Run as a Ray actor with ``max_concurrency=2``, so ``stop`` can run while ``convert`` does.
    """

    def __init__(self, settings: Settings, weights: bytes, weights_sha256: str, calibration=None) -> None:
        from livedepth.app.estimator import build_estimator  # torch loads in the actor, not on the driver

        if _sha256(weights) != weights_sha256:
            raise LivedepthError("the weights arrived damaged (SHA-256 mismatch)")
        name = Path(registry.get(settings.model.name).weights.filename)
        path = cache_dir() / "ray" / f"{name.stem}-{weights_sha256[:16]}{name.suffix}"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, weights)
        self.settings = settings
        self.estimator = build_estimator(
            replace(settings, weights=replace(settings.weights, sha256=weights_sha256)), path, calibration)
        self.stopping = threading.Event()
        self.name = f"{os.uname().nodename}:{os.getpid()}"

    def stop(self) -> None:
        self.stopping.set()

    def convert(self, job: Job, data: bytes | None = None) -> tuple[FileResult, dict[str, bytes]]:
        """Convert ``job``. With ``data`` (transfer mode) the input arrives as bytes and the
        outputs go back as ``{path relative to the job's output folder: bytes}``."""
        if data is None:
            return convert_job(self.settings, job, self.estimator.predict, stop=self.stopping, worker=self.name), {}
        with tempfile.TemporaryDirectory(prefix="livedepth-ray-") as tmp:
            work = Path(tmp)
            source = work / "in" / job.source.name
            source.parent.mkdir()
            source.write_bytes(data)
            local = Job(source, work / "out" / job.output.name,
                        None if job.raw is None else work / "out" / job.raw.name)
            result = convert_job(self.settings, local, self.estimator.predict, stop=self.stopping,
                                 worker=self.name)
            files = {}
            if result.status == "done":
                files = {str(p.relative_to(local.output.parent)): p.read_bytes()
                         for p in sorted(local.output.parent.rglob("*")) if p.is_file()}
        return replace(result, source=str(job.source), output=str(job.output)), files

    def peak_rss_mb(self) -> float:
        return peak_rss_mb()


class RayPool:
    """Converts jobs on a Ray cluster; the same ``run``/``stop`` as :class:`~livedepth.app.batch.LocalPool`.

    ``address``: None for plain ``--ray`` (as ``ray.init()``: $RAY_ADDRESS, the local ``ray start``
    cluster, else a local instance for this batch), ``"auto"`` for a running cluster only, or
    HOST:PORT. ``connect()`` joins it (bounded by ``connect_timeout``; ``run`` does it if the
    caller has not). After ``run``, ``head_lost`` tells whether the cluster's head went away:
    Ray's own teardown then ends the process with its own exit code when it runs (at exit),
    so a caller that owns the process ends it itself once its output is flushed.
    """

    def __init__(self, settings: Settings, weights: Path, address: str | None = None,
                 transfer: bool = False, actors: int | None = None, calibration=None,
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.settings = settings
        self.calibration = calibration
        self.weights = weights
        self.address = address
        self.transfer = transfer
        self.actors = actors
        self.connect_timeout = connect_timeout
        self.peak_rss_mb: dict[str, float] = {}
        self.workers = 0  # actors started by run()
        self.head_lost = False
        self._local = False  # a local instance started by connect()
        self._stop = threading.Event()

    def stop(self, reason: str = "stopped") -> None:
        self._stop.set()

    abort = stop

    @property
    def busy(self) -> bool:
        return False

    def connect(self) -> None:
        """Join the cluster (or start a local instance); every failure is one LivedepthError."""
        ray = import_ray()
        if not ray.is_initialized():
            self._local = connect(self.address, self.connect_timeout)

    def _start_actors(self, ray, limit: int) -> dict:
        """Actors pinned node by node (see :func:`placement`): {actor: node label}."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        threads = self.settings.model.threads or 1
        gpus = 1 if self.settings.model.device == "cuda" else 0
        order = placement([n for n in ray.nodes() if n.get("Alive")], threads, bool(gpus), limit)
        data = self.weights.read_bytes()
        sha = _sha256(data)
        weights_ref = ray.put(data)  # once, for every actor
        remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_concurrency=2, max_restarts=0)(ConvertActor)
        settings = replace(self.settings, model=replace(self.settings.model, threads=threads))
        calibration = ray.put(self.calibration)
        log.info("ray: %d actors of %d CPUs on %d nodes", len(order), threads, len({n["NodeID"] for n in order}))
        return {remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(settings, weights_ref, sha, calibration): _node_label(n) for n in order}

    def run(self, jobs: Sequence[Job], on_frame: Callable[[], None] | None = None,
            on_result: Callable[[FileResult], None] | None = None) -> list[FileResult]:
        if not jobs:
            return []
        ray = import_ray()
        self.connect()
        try:
            actors = self._start_actors(ray, min(self.actors or len(jobs), len(jobs)))
            self.workers = len(actors)
            try:
                return self._dispatch(ray, actors, jobs, on_frame, on_result)
            finally:
                if not self.head_lost:  # else the actors go with their cluster
                    self._release(ray, actors)
        finally:
            if self._local and not self.head_lost:
                ray.shutdown()

    def _release(self, ray, actors) -> None:
        for actor in actors:
            try:
                self.peak_rss_mb[str(actor)] = ray.get(actor.peak_rss_mb.remote(), timeout=5)
            except Exception:  # noqa: BLE001 - a dead actor has no memory to report
                pass
            ray.kill(actor)

    def _submit(self, ray, actor, job: Job):
        if not self.transfer:
            return actor.convert.remote(job)
        return actor.convert.remote(job, ray.put(job.source.read_bytes()))

    def _dispatch(self, ray, actors: dict, jobs, on_frame, on_result) -> list[FileResult]:
        pending = deque(jobs)
        idle: deque = deque()
        starting = {actor.__ray_ready__.remote(): (actor, node) for actor, node in actors.items()}
        running: dict = {}  # ref -> (actor, job)
        tries: dict[Path, int] = {}
        results: dict[Path, FileResult] = {}
        broken: dict[str, str] = {}  # node label -> why livedepth cannot start there
        started = False
        stop_sent = 0.0
        head = _HeadWatch(_gcs_address(ray))

        def stopping() -> bool:
            return self._stop.is_set() or self.head_lost

        def finish(result: FileResult, job: Job) -> None:
            results[job.output] = result
            if on_result is not None:
                on_result(result)

        while running or (pending and (idle or starting) and not stopping()):
            while pending and idle and not stopping() and head.answering:
                actor, job = idle.popleft(), pending.popleft()
                running[self._submit(ray, actor, job)] = (actor, job)
            if stopping() and not stop_sent:
                stop_sent = time.monotonic()
                for actor, _ in running.values():
                    actor.stop.remote()
            if running or starting:
                ready, _ = ray.wait([*running, *starting], num_returns=1, timeout=0.5)
            else:  # idle actors, and a head that does not answer
                ready = []
                time.sleep(0.5)
            head.check()
            if not self.head_lost and head.lost:
                self.head_lost = True
                log.error("ray: the cluster's head (%s) has not answered for %.0f s: stopping the batch",
                          head.address, HEAD_LOST_S)
                continue
            grace = HEAD_LOST_GRACE_S if self.head_lost else STOP_GRACE_S
            if stop_sent and not ready and time.monotonic() - stop_sent > grace:
                for ref in running if not self.head_lost else ():  # the cluster is going anyway
                    ray.cancel(ref)
                break
            for ref in ready:
                if ref in starting:
                    actor = _started(ray, ref, *starting.pop(ref), broken, started)
                    if actor is not None:
                        started = True
                        idle.append(actor)
                    continue
                actor, job = running.pop(ref)
                try:
                    result, files = ray.get(ref, timeout=grace if self.head_lost else None)
                except ray.exceptions.RayActorError as exc:  # the actor (or its node) died
                    tries[job.output] = tries.get(job.output, 0) + 1
                    if stopping():
                        continue  # left for the next run
                    if tries[job.output] <= RETRIES and (idle or running or starting):
                        log.warning("ray: %s: worker lost (%s); retrying on another worker", job.source,
                                    type(exc).__name__)
                        pending.appendleft(job)
                    else:
                        _discard(job)
                        finish(FileResult(str(job.source), str(job.output), "failed",
                                          reason=f"worker lost {tries[job.output]} times"), job)
                    continue
                except ray.exceptions.GetTimeoutError:  # the head is gone and the result cannot come
                    continue
                except ray.exceptions.RayTaskError as exc:
                    _discard(job)
                    finish(FileResult(str(job.source), str(job.output), "failed",
                                      reason=str(exc).strip().splitlines()[-1]), job)
                    idle.append(actor)
                    continue
                if files:
                    for name, data in files.items():
                        target = job.output.parent / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        write_atomically(target, data)
                if on_frame is not None:
                    for _ in range(result.frames):
                        on_frame()
                finish(result, job)
                idle.append(actor)
        if broken and not started:
            nodes = "; ".join(f"node {node}: {why}" for node, why in broken.items())
            raise LivedepthError(f"--ray: no node can run livedepth ({nodes}): pip install 'livedepth[ray]' "
                                 "on every node, the same version as here")
        for job in jobs:
            if job.output not in results:
                _discard(job)
        if self.head_lost:
            return self._after_head_lost([results.get(job.output) for job in jobs], jobs)
        status, reason = ("stopped", "batch stopped") if self._stop.is_set() else ("failed", "no worker left")
        return [results.get(job.output) or FileResult(str(job.source), str(job.output), status, reason=reason)
                for job in jobs]

    @staticmethod
    def _after_head_lost(results: list[FileResult | None], jobs: Sequence[Job]) -> list[FileResult]:
        """Files not converted are ``stopped`` (the head was lost) unless they failed on their own;
        one line names every file left."""
        final = [r if r is not None and r.status != "stopped"
                 else FileResult(str(job.source), str(job.output), "stopped", reason="the Ray head was lost")
                 for r, job in zip(results, jobs)]
        left = [Path(r.source).name for r in final if r.status != "done"]
        if left:
            names = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
            log.error("ray: %d of %d files left (%s): the same command with a running cluster converts only those",
                      len(left), len(jobs), names)
        return final


def placement(nodes: Sequence[dict], threads: int, gpu: bool, limit: int) -> list[dict]:
    """The node (an entry of ``ray.nodes()``) of each actor: one per ``threads`` CPUs (and GPU)
    of every node, taken round by round so that a short batch still spreads over the nodes."""

    def fits(node: dict) -> int:
        count = int(node["Resources"].get("CPU", 0) // threads)
        return min(count, int(node["Resources"].get("GPU", 0))) if gpu else count

    slots = [fits(node) for node in nodes]
    if not any(slots):
        most = max((node["Resources"].get("CPU", 0) for node in nodes), default=0)
        need = f"{threads} CPUs" + (" and a GPU" if gpu else "")
        raise LivedepthError(f"--ray: no node of the cluster has {need} for a worker (the largest has {most:g} CPUs)")
    return [node for rank in range(max(slots)) for node, count in zip(nodes, slots) if count > rank][:limit]


def _gcs_address(ray) -> str | None:
    """HOST:PORT of the head's GCS, when this process knows it (not through Ray Client)."""
    try:
        address = ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - unknown: the head is not watched
        return None
    return address if isinstance(address, str) and address.rpartition(":")[2].isdigit() else None


class _HeadWatch:
    """Connects to the head's GCS port once a second: ``answering`` is False from the first
    failure on, ``lost`` once it has failed for ``HEAD_LOST_S``."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        host, _, port = (address or ":0").rpartition(":")
        self._where = (host.strip("[]"), int(port))
        self._failing_since: float | None = None
        self._next = 0.0

    @property
    def answering(self) -> bool:
        return self._failing_since is None

    @property
    def lost(self) -> bool:
        return not self.answering and time.monotonic() - self._failing_since >= HEAD_LOST_S

    def check(self) -> None:
        now = time.monotonic()
        if self.address is None or now < self._next:
            return
        self._next = now + 1.0
        was = self.answering
        try:
            socket.create_connection(self._where, timeout=1.0).close()
            self._failing_since = None
        except OSError:
            self._failing_since = self._failing_since or now
        if was != self.answering:
            log.warning("ray: the cluster's head (%s) %s", self.address,
                        "answers again" if self.answering else "does not answer: no new files until it does")


def _started(ray, ref, actor, node: str, broken: dict[str, str], any_started: bool):
    """``actor`` once its ``__ray_ready__`` (the model loaded) is back; None when it cannot start,
    noting in ``broken`` why livedepth cannot run on its node."""
    try:
        ray.get(ref)
    except ray.exceptions.RayActorError as exc:
        if not exc.actor_init_failed:
            log.warning("ray: node %s: a worker was lost while starting", node)
        elif node not in broken:
            broken[node] = _start_failure(exc)
            if any_started:
                _log_broken({node: broken[node]})
        return None
    if not any_started:  # said once a node can convert; when none can, the batch stops with one line
        _log_broken(broken)
    return actor


def _log_broken(broken: dict[str, str]) -> None:
    for node, why in broken.items():
        log.warning("ray: node %s cannot run livedepth: %s (pip install 'livedepth[ray]' there); "
                    "converting on the other nodes", node, why)


def _node_label(node: dict) -> str:
    """A node as its user knows it: its name (``ray start --node-name``, else its address) and host."""
    name, host = node.get("NodeName") or node.get("NodeManagerAddress", "?"), node.get("NodeManagerHostname")
    return name if not host or host == name else f"{name} ({host})"


def _start_failure(exc: BaseException) -> str:
    """Why an actor could not start, in a few words: the missing module, else the error's last line."""
    text = str(exc)
    missing = re.search(r"No module named '([^']+)'", text)
    if missing:
        return f"No module named '{missing.group(1)}'"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"[\w.]+(Error|Exception): ", line)]
    return (errors or lines or [type(exc).__name__])[-1]


def _discard(job: Job) -> None:
    """Remove what an unfinished conversion of ``job`` may have left on shared storage."""
    partial_path(job.output).unlink(missing_ok=True)
