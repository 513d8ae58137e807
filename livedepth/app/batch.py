"""Many videos: find the inputs, plan mirrored outputs, convert them in worker processes.

``plan`` turns files, folders (recursive, video files only) and globs into :class:`Job`s whose
outputs mirror the inputs' relative paths under an output folder; a finished output is skipped
unless ``overwrite``. :func:`convert_job` converts one job with a loaded estimator (in any
process: no signals, no exit). :class:`LocalPool` runs jobs in ``jobs`` worker processes, each
loading the model once. A file that fails never stops the batch; a stopped batch keeps every
finished output and leaves nothing of the unfinished ones (the next run redoes them).
"""

from __future__ import annotations

import glob
import logging
import multiprocessing as mp
import queue
import resource
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from livedepth.app.convert import RAW_FOLDER_SUFFIX, build_converter, check_raw_name
from livedepth.core.errors import LivedepthError
from livedepth.core.files import read_cache, write_cache
from livedepth.core.predictor import Predict
from livedepth.core.vocab import VIDEO_SUFFIXES
from livedepth.io.video import probe
from livedepth.settings import Settings
from livedepth.core.stages import one_line

log = logging.getLogger(__name__)

#: How often blocked loops look for a stop request (seconds).
POLL_S = 0.2


@dataclass(frozen=True)
class Job:
    """One file to convert: its input, its output and (with ``--raw``) its raw depth output."""

    source: Path
    output: Path
    raw: Path | None = None


@dataclass(frozen=True)
class FileResult:
    """What happened to one file: ``done``, ``skipped``, ``failed`` (with ``reason``) or ``stopped``."""

    source: str
    output: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    reason: str | None = None
    worker: str | None = None

    @classmethod
    def of(cls, job: Job, status: str, reason: str | None = None, worker: str | None = None) -> FileResult:
        """``job``'s result when no frame of it was converted."""
        return cls(str(job.source), str(job.output), status, reason=reason, worker=worker)

    def to_dict(self) -> dict:
        return asdict(self)


def _expand(item: str) -> tuple[Path, list[Path]]:
    """(base folder, video files) for a file, a folder (recursive) or a glob."""
    path = Path(item)
    if path.is_file():
        return path.parent, [path]
    if path.is_dir():
        return path, sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if glob.has_magic(item):
        parts = Path(item).parts
        fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
        base = Path(*parts[:fixed]) if fixed else Path(".")
        found = sorted(Path(p) for p in glob.glob(item, recursive=True))
        return base, [p for p in found if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    raise LivedepthError(f"input not found: {item}")


def raw_output(output: Path, raw: Path | None) -> Path | None:
    """A file's raw depth output in batch mode: ``NAME.depth.mkv`` when ``--raw`` ends in .mkv,
    else a folder ``NAME.depth``, next to the video output."""
    if raw is None:
        return None
    return output.with_name(output.stem + RAW_FOLDER_SUFFIX + (".mkv" if raw.suffix.lower() == ".mkv" else ""))


def plan(inputs: Sequence[str], out_dir: Path, raw: Path | None = None,
         overwrite: bool = False) -> tuple[list[Job], list[FileResult]]:
    """The jobs to run and the files skipped because their output is already finished."""
    if raw is not None:
        check_raw_name(raw)
    jobs: list[Job] = []
    skipped: list[FileResult] = []
    seen: dict[Path, Path] = {}
    for item in inputs:
        base, files = _expand(item)
        if not files:
            raise LivedepthError(f"no video files in {item}")
        for source in files:
            output = out_dir / source.relative_to(base).with_suffix(".mp4")
            if output in seen and seen[output] != source:
                raise LivedepthError(f"{seen[output]} and {source} would both be written to {output}")
            if output in seen:
                continue
            seen[output] = source
            if output.exists() and not overwrite:
                skipped.append(FileResult(str(source), str(output), "skipped", reason="output exists"))
            else:
                jobs.append(Job(source, output, raw_output(output, raw)))
    return jobs, skipped


def convert_job(settings: Settings, job: Job, predict: Predict, on_frame: Callable[[], None] | None = None,
                stop: threading.Event | None = None, worker: str | None = None) -> FileResult:
    """Convert one job; never raises for a bad file (the result says why it failed).

    ``stop`` (anything with ``is_set()``) aborts the conversion once set; the unfinished output
    is removed.
    """
    start = time.perf_counter()
    convert = replace(settings.convert, raw=job.raw, overwrite=True)  # leftovers of a stopped run are redone
    result = FileResult.of(job, "failed", worker=worker)
    if stop is not None and stop.is_set():
        return replace(result, status="stopped")
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        converter = build_converter(replace(settings, convert=convert), job.source, job.output, predict,
                                    on_frame, keep_stopped=False)
    except (LivedepthError, OSError) as exc:
        return replace(result, reason=str(one_line(exc, "cannot start")), seconds=time.perf_counter() - start)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(POLL_S):
            if stop.is_set():
                converter.abort("stopped")
                return

    if stop is not None:
        threading.Thread(target=watch, name="livedepth-batch-stop", daemon=True).start()
    try:
        converted = converter.run()
    except Exception as exc:  # noqa: BLE001 - one bad file never stops the batch
        return replace(result, reason=str(one_line(exc, "conversion failed")), seconds=time.perf_counter() - start)
    finally:
        done.set()
    status = "stopped" if converted.interrupted else "done"
    return replace(result, status=status, frames=converted.frames, seconds=time.perf_counter() - start)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- local worker processes ------------------------------------------------------------------


class StopFlag:
    """A stop flag shared with worker processes: a lock-free shared byte, so a worker that dies
    while looking at it can never leave a lock held (a multiprocessing Event can)."""

    def __init__(self, context) -> None:
        self._value = context.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)



def _worker_main(name: str, settings: Settings, weights: str | None, calibration, jobs: mp.Queue,
                 events: mp.Queue, stop, worker_init: Callable[[], None] | None) -> None:
    """A worker process: load the model once, then convert job after job until the sentinel."""
    if worker_init is not None:
        worker_init()
    from livedepth.app.estimator import build_estimator  # after worker_init, which may set torch's threads

    try:
        estimator = build_estimator(settings, weights, calibration)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        events.put(("fatal", name, str(one_line(exc, "worker start failed"))))
        return
    events.put(("ready", name, None))
    while (job := jobs.get()) is not None:
        events.put(("start", name, job))
        result = convert_job(settings, job, estimator.predict, lambda: events.put(("frame", name, None)), stop, name)
        events.put(("result", name, result))
    events.put(("exit", name, peak_rss_mb()))


class Finished:
    """The results a pool has so far, each passed on to ``on_result`` as it comes."""

    def __init__(self, on_result: Callable[[FileResult], None] | None) -> None:
        self.results: dict[Path, FileResult] = {}
        self._on_result = on_result

    def add(self, result: FileResult, job: Job) -> None:
        self.results[job.output] = result
        if self._on_result is not None:
            self._on_result(result)

    def in_order(self, jobs: Sequence[Job], status: str, reason: str) -> list[FileResult]:
        """One result per job; a job without one gets ``status`` and ``reason``."""
        return [self.results.get(job.output) or FileResult.of(job, status, reason) for job in jobs]


class Pool(ABC):
    """Converts a batch's jobs: here (:class:`LocalPool`) or on a cluster (:class:`~livedepth.app.ray_pool.RayPool`).

    ``run`` returns one :class:`FileResult` per job, calling ``on_frame()`` for every
    encoded frame and ``on_result(result)`` for every finished file. ``stop()`` (thread-safe)
    ends the batch: running files are aborted and removed, pending ones are reported
    ``stopped``. ``workers`` is how many convert at once, and after the run ``peak_rss_mb``
    holds each one's peak memory.
    """

    def __init__(self, stop_flag: StopFlag | threading.Event, workers: int) -> None:
        self._stop = stop_flag
        self.workers = workers
        self.peak_rss_mb: dict[str, float] = {}

    def stop(self, reason: str = "stopped") -> None:
        """End the batch: running files are aborted (and removed), pending ones are not started."""
        self._stop.set()

    def run(self, jobs: Sequence[Job], on_frame: Callable[[], None] | None = None,
            on_result: Callable[[FileResult], None] | None = None) -> list[FileResult]:
        return self._run(jobs, on_frame, on_result) if jobs else []

    @abstractmethod
    def _run(self, jobs: Sequence[Job], on_frame: Callable[[], None] | None,
             on_result: Callable[[FileResult], None] | None) -> list[FileResult]:
        """``run`` for one or more jobs."""


class LocalPool(Pool):
    """``jobs`` worker processes (spawned, each loading the model once) that convert files.

    ``calibration``: frames for the int8 backend. ``worker_init`` (picklable) runs first in
    every worker: the caller's say, e.g. over signals, which the library never touches.
    """

    def __init__(self, settings: Settings, weights: str | Path | None, jobs: int, calibration=None,
                 worker_init: Callable[[], None] | None = None) -> None:
        self._context = mp.get_context("spawn")  # torch and its thread pools do not survive fork
        super().__init__(StopFlag(self._context), max(1, jobs))
        self.settings = settings
        self.calibration = calibration
        self.worker_init = worker_init
        self.weights = None if weights is None else str(weights)

    def _run(self, jobs, on_frame, on_result) -> list[FileResult]:
        job_queue: mp.Queue = self._context.Queue()
        events: mp.Queue = self._context.Queue()
        for job in jobs:
            job_queue.put(job)
        count = min(self.workers, len(jobs))
        for _ in range(count):
            job_queue.put(None)
        processes = {
            f"worker{i}": self._context.Process(target=_worker_main, name=f"livedepth-worker{i}",
                                                args=(f"worker{i}", self.settings, self.weights, self.calibration,
                                                      job_queue, events, self._stop, self.worker_init))
            for i in range(count)
        }
        for process in processes.values():
            process.start()
        try:
            return self._collect(jobs, processes, events, on_frame, on_result)
        finally:
            self._stop.set()
            for process in processes.values():
                process.join(30)
                if process.is_alive():
                    process.kill()
                    process.join()

    def _collect(self, jobs, processes, events, on_frame, on_result) -> list[FileResult]:
        finished = Finished(on_result)
        running: dict[str, Job] = {}
        exited: set[str] = set()
        fatal: str | None = None
        while len(exited) < len(processes):
            try:
                kind, name, payload = events.get(timeout=POLL_S)
            except queue.Empty:
                for name, process in processes.items():
                    if name not in exited and not process.is_alive():  # died without saying goodbye
                        exited.add(name)
                        if name in running:
                            job = running.pop(name)
                            finished.add(FileResult.of(job, "failed", f"worker died (exit code {process.exitcode})",
                                                       name), job)
                continue
            if kind == "frame" and on_frame is not None:
                on_frame()
            elif kind == "start":
                running[name] = payload
            elif kind == "result":
                finished.add(payload, running.pop(name))
            elif kind == "fatal":
                fatal = fatal or payload
                exited.add(name)
            elif kind == "exit":
                self.peak_rss_mb[name] = payload
                exited.add(name)
        if fatal is not None and not finished.results:
            raise LivedepthError(fatal)
        if self._stop.is_set():
            return finished.in_order(jobs, "stopped", "batch stopped")
        return finished.in_order(jobs, "failed", fatal or "not converted")


def total_frames(jobs: Sequence[Job]) -> int | None:
    """The frames of every input as their containers state them (None when one does not say)."""
    total = 0
    for job in jobs:
        try:
            count = probe(job.source).frame_count
        except LivedepthError:
            count = 0  # it will fail on its own, with its reason
        if count is None:
            return None
        total += count
    return total


def summary_table(results: Sequence[FileResult]) -> str:
    """A plain-text table: one row per file (status, frames, seconds, reason) and the totals."""
    rows = [("status", "frames", "seconds", "file", "reason")]
    for r in results:
        rows.append((r.status, str(r.frames), f"{r.seconds:.1f}", r.source, r.reason or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)).rstrip()
             for row in rows]
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed", "stopped")}
    frames = sum(r.frames for r in results)
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f"; {frames} frames")
    return "\n".join(lines)


def batch_ok(results: Sequence[FileResult]) -> bool:
    """Whether every file converted or was skipped."""
    return all(r.status in ("done", "skipped") for r in results)


# --- --jobs auto -----------------------------------------------------------------------------


def splits(cores: int) -> list[tuple[int, int]]:
    """Every (jobs, threads) with jobs * threads == cores."""
    return [(j, cores // j) for j in range(1, cores + 1) if cores % j == 0]


def measure_split(settings: Settings, weights: str | Path | None, jobs: int, threads: int, folder: Path,
                  frames: int = 40, worker_init: Callable[[], None] | None = None) -> float:
    """Frames per second of ``jobs`` workers at ``threads`` threads, converting a synthetic 640x480
    clip each; timed from the first encoded frame to the last, so model loading does not count."""
    from livedepth.bench import write_test_video  # torch: workers import this module before worker_init

    clip = folder / "trial.mp4"
    if not clip.is_file():
        write_test_video(clip, frames)
    trial = replace(settings, model=replace(settings.model, threads=threads),
                    convert=replace(settings.convert, audio="none", raw=None))
    stamps: list[float] = []
    jobs_list = [Job(clip, folder / f"out{jobs}x{threads}-{i}.mp4") for i in range(jobs)]
    pool = LocalPool(trial, weights, jobs, worker_init=worker_init)
    results = pool.run(jobs_list, on_frame=lambda: stamps.append(time.perf_counter()))
    if not batch_ok(results) or len(stamps) < 2 * jobs:
        raise LivedepthError(f"--jobs auto: the trial conversion failed: {results[0].reason}")
    return (len(stamps) - jobs) / (stamps[-1] - stamps[jobs - 1])


def choose_jobs(settings: Settings, weights: str | Path | None, cores: int,
                worker_init: Callable[[], None] | None = None) -> tuple[int, int]:
    """(jobs, threads) for ``--jobs auto``: every split of the cores is measured once per machine,
    backend and model settings; the fastest is cached in the livedepth cache and reused."""
    import platform
    import tempfile

    model = settings.model
    key = f"{platform.processor() or platform.machine()}|{cores}|{model.name}|{model.backend}|{model.size}|{model.keep_aspect}"
    cached = read_cache("batch-jobs", key)
    if cached is not None:
        log.info("--jobs auto: %d jobs x %d threads (measured before)", *cached["split"])
        return tuple(cached["split"])
    rates = {}
    with tempfile.TemporaryDirectory(prefix="livedepth-jobs-") as tmp:
        for jobs, threads in splits(cores):
            rates[jobs, threads] = measure_split(settings, weights, jobs, threads, Path(tmp), worker_init=worker_init)
            log.info("--jobs auto: %d jobs x %d threads: %.1f frames/s", jobs, threads, rates[jobs, threads])
    best = max(rates, key=rates.get)
    measured = {f"{j}x{t}": rate for (j, t), rate in rates.items()}
    write_cache("batch-jobs", key, {"split": list(best), "frames_per_s": measured})
    log.info("--jobs auto: %d jobs x %d threads", *best)
    return best
