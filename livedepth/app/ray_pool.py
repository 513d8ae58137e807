"""Batch conversion on a Ray cluster: the same per-file work as the local pool, on many machines.

An actor per slot of ``threads`` CPUs (``num_gpus=1`` with ``--device cuda``) loads the model
once and converts file after file; an actor pool rather than Ray Data, because the unit of work
is a whole file with its own container, timestamps and audio, and each actor must keep one
estimator across files. The weights travel once through the object store and are checked by
SHA-256 on every node. With shared storage (the default) actors read and write the paths
themselves; with ``transfer`` the driver ships each input's bytes through the object store and
writes the finished files the actor sends back, atomically.

A file whose actor dies (its node lost) is given to another actor, up to ``RETRIES`` times; a
stopped or failed file leaves no partial output. ``stop()`` (Ctrl+C) cancels what has not
started, asks running files to stop, and keeps every finished output.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from livedepth.app.batch import FileResult, Job, convert_job, peak_rss_mb
from livedepth.run.convert import partial_path
from livedepth.core.errors import LivedepthError
from livedepth.core.files import cache_dir, write_atomically
from livedepth.model import registry
from livedepth.settings import Settings

log = logging.getLogger(__name__)

#: How many times a file is given to another actor after its actor died.
RETRIES = 2
#: How long the driver waits for running files to stop after ``stop()``.
STOP_GRACE_S = 30.0


def _import_ray():
    try:
        import ray
    except ImportError:
        raise LivedepthError("--ray needs Ray: pip install 'livedepth[ray]' (on every node)") from None
    return ray


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
    """Converts jobs on a Ray cluster; the same ``run``/``stop`` as :class:`~livedepth.app.batch.LocalPool`."""

    def __init__(self, settings: Settings, weights: Path, address: str | None = None,
                 transfer: bool = False, actors: int | None = None, calibration=None) -> None:
        self.settings = settings
        self.calibration = calibration
        self.weights = weights
        self.address = address or os.environ.get("RAY_ADDRESS") or "auto"
        self.transfer = transfer
        self.actors = actors
        self.peak_rss_mb: dict[str, float] = {}
        self.workers = 0  # actors started by run()
        self._stop = threading.Event()

    def stop(self, reason: str = "stopped") -> None:
        self._stop.set()

    abort = stop

    @property
    def busy(self) -> bool:
        return False

    def _start_actors(self, ray, count: int):
        threads = self.settings.model.threads or 1
        gpus = 1 if self.settings.model.device == "cuda" else 0
        data = self.weights.read_bytes()
        sha = _sha256(data)
        weights_ref = ray.put(data)  # once, for every actor
        remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_concurrency=2, max_restarts=0)(ConvertActor)
        settings = replace(self.settings, model=replace(self.settings.model, threads=threads))
        calibration = ray.put(self.calibration)
        return [remote.remote(settings, weights_ref, sha, calibration) for _ in range(count)]

    def run(self, jobs: Sequence[Job], on_frame: Callable[[], None] | None = None,
            on_result: Callable[[FileResult], None] | None = None) -> list[FileResult]:
        ray = _import_ray()
        if not jobs:
            return []
        if not ray.is_initialized():
            ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
        threads = self.settings.model.threads or 1
        slots = self.actors or max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        actors = self._start_actors(ray, min(slots, len(jobs)))
        self.workers = len(actors)
        log.info("ray: %d actors of %d CPUs on %d nodes", len(actors), threads,
                 sum(1 for n in ray.nodes() if n.get("Alive")))
        try:
            return self._dispatch(ray, actors, jobs, on_frame, on_result)
        finally:
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

    def _dispatch(self, ray, actors, jobs, on_frame, on_result) -> list[FileResult]:
        pending = deque(jobs)
        idle = deque(actors)
        running: dict = {}  # ref -> (actor, job)
        tries: dict[Path, int] = {}
        results: dict[Path, FileResult] = {}
        stop_sent = 0.0

        def finish(result: FileResult, job: Job) -> None:
            results[job.output] = result
            if on_result is not None:
                on_result(result)

        while (pending and idle and not self._stop.is_set()) or running:
            while pending and idle and not self._stop.is_set():
                actor, job = idle.popleft(), pending.popleft()
                running[self._submit(ray, actor, job)] = (actor, job)
            if self._stop.is_set() and not stop_sent:
                stop_sent = time.monotonic()
                for actor, _ in running.values():
                    actor.stop.remote()
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            if stop_sent and not ready and time.monotonic() - stop_sent > STOP_GRACE_S:
                for ref in running:
                    ray.cancel(ref)
                break
            for ref in ready:
                actor, job = running.pop(ref)
                try:
                    result, files = ray.get(ref)
                except ray.exceptions.RayActorError as exc:  # the actor (or its node) died
                    tries[job.output] = tries.get(job.output, 0) + 1
                    if tries[job.output] <= RETRIES and (idle or running):
                        log.warning("ray: %s: worker lost (%s); retrying on another worker", job.source,
                                    type(exc).__name__)
                        pending.appendleft(job)
                    else:
                        _discard(job)
                        finish(FileResult(str(job.source), str(job.output), "failed",
                                          reason=f"worker lost {tries[job.output]} times"), job)
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
            if not idle and not running and pending:
                break  # every actor is gone
        for job in jobs:
            if job.output not in results:
                _discard(job)
        status = "stopped" if self._stop.is_set() else "failed"
        return [results.get(job.output) or FileResult(str(job.source), str(job.output), status,
                                                      reason="batch stopped" if status == "stopped"
                                                      else "no worker left")
                for job in jobs]


def _discard(job: Job) -> None:
    """Remove what an unfinished conversion of ``job`` may have left on shared storage."""
    partial_path(job.output).unlink(missing_ok=True)
