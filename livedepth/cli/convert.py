"""``livedepth convert IN... OUT``: every frame of a video to depth, same timestamps, audio copied.

One input file and an output video name convert that file; otherwise OUT is a folder and the
inputs (files, folders, globs) are converted into it, mirroring their relative paths.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

from livedepth.cli.common import (
    EXIT_USAGE,
    Interrupts,
    add_config_flags,
    add_setting_flags,
    ignore_interrupts,
    say,
    settings_from,
)
from livedepth.core.errors import LivedepthError
from livedepth.core.files import check_writable, write_json
from livedepth.core.vocab import MUXERS

DEFAULTS = {("render", "normalize"): "stable"}
VIDEO_OUTPUTS = tuple(MUXERS)


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert videos into depth videos", description=__doc__)
    p.add_argument("inputs", nargs="+", metavar="IN", help="video files, folders (recursive) or globs")
    p.add_argument("output", type=Path, metavar="OUT", help="output video (.mp4, .mov, .mkv), or a folder")
    p.add_argument("--quiet", dest="convert_quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--jobs", default="1", metavar="N|auto",
                   help="worker processes for many files, each loading the model once (auto: measured)")
    p.add_argument("--report", type=Path, metavar="PATH", help="also write the batch summary as JSON")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run on Ray (needs livedepth[ray]): at HOST:PORT; auto: a running cluster only; no address: "
                        "$RAY_ADDRESS, the `ray start` cluster here, else a local instance for this batch")
    p.add_argument("--ray-transfer", action="store_true",
                   help="with --ray: ship inputs and outputs through the object store (no shared storage)")
    add_setting_flags(p, "convert")
    p.add_argument("--no-audio", dest="convert.audio", action="store_const", const="none", help="same as --audio none")
    add_setting_flags(p, "render")
    add_setting_flags(p, "stereo")
    add_setting_flags(p, "pointcloud")
    add_setting_flags(p, "model")
    add_config_flags(p, preset="convert")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from livedepth.app.convert import progress_enabled  # on use, as below: keeps `livedepth --help` fast

    quiet = args.quiet or args.convert_quiet
    settings = settings_from(args, DEFAULTS)
    first = args.inputs[0]
    single = (len(args.inputs) == 1 and args.output.suffix.lower() in VIDEO_OUTPUTS
              and not Path(first).is_dir() and not glob.has_magic(first))
    if single:
        return _one_file(args, settings, Path(args.inputs[0]), progress_enabled(quiet), quiet)
    return _many_files(args, settings, progress_enabled(quiet), quiet)


def _one_file(args: argparse.Namespace, settings, source: Path, progress: bool, quiet: bool) -> int:
    from tqdm import tqdm

    from livedepth.app.convert import build_converter, calibration_frames, summary_line  # on use (torch)
    from livedepth.app.estimator import build_estimator

    build_converter(settings, source, args.output, lambda image: image)  # checks before the model loads
    estimator = build_estimator(settings, args.weights, calibration_frames(settings, source))
    with tqdm(unit="frame", desc="convert", disable=not progress, dynamic_ncols=True, leave=False) as bar:
        converter = build_converter(settings, source, args.output, estimator.predict, lambda: bar.update(1))
        bar.reset(total=converter.info.frame_count)
        with Interrupts(converter) as interrupts:
            result = converter.run()
            if interrupts.exit_code is not None:
                sys.stderr.write(f"livedepth: interrupted by {interrupts.signal_name}: wrote {result.frames} finished "
                                 f"frames to {result.output} (playable)\n")
    if interrupts.exit_code is not None:
        return interrupts.exit_code
    if not quiet:
        say(summary_line(result))
    return 0


def _jobs(text: str) -> int | None:
    """``--jobs``: a positive count, or None for auto."""
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise LivedepthError(f"--jobs {text}: must be a positive whole number or auto")
    return int(text)


def _many_files(args: argparse.Namespace, settings, progress: bool, quiet: bool) -> int:
    from dataclasses import replace

    from tqdm import tqdm

    from livedepth.app import batch  # on use, with the two below: keeps `livedepth --help` fast
    from livedepth.app.convert import calibration_frames
    from livedepth.backends.system import available_cores

    jobs_flag = _jobs(args.jobs)
    if settings.convert.ply is not None:
        raise LivedepthError("--ply takes one input video and an output video file")
    if args.output.suffix.lower() in VIDEO_OUTPUTS or args.output.is_file():
        raise LivedepthError(f"with several inputs, a folder or a glob, OUT must be a folder, got {args.output}")
    if args.report is not None:
        check_writable(args.report)
    jobs, skipped = batch.plan(args.inputs, args.output, settings.convert.raw, settings.convert.overwrite)
    workers = jobs_flag
    calibration = calibration_frames(settings, jobs[0].source) if jobs else None
    if args.ray is not None:
        from livedepth.app.estimator import resolve_weights
        from livedepth.app.ray_pool import RayPool  # on use: only --ray needs it

        weights = resolve_weights(settings, args.weights)
        settings = replace(settings, model=replace(settings.model, threads=settings.model.threads or 1))
        pool = RayPool(settings, weights, args.ray or None, transfer=args.ray_transfer, calibration=calibration)
        if jobs:
            pool.connect()  # before anything is written: a cluster that cannot be used is one line
    else:
        if workers is None and jobs:
            workers, threads = batch.choose_jobs(settings, args.weights, available_cores(), ignore_interrupts)
            settings = replace(settings, model=replace(settings.model, threads=threads))
        pool = batch.LocalPool(settings, args.weights, workers or 1, calibration, ignore_interrupts)
    args.output.mkdir(parents=True, exist_ok=True)
    total = batch.total_frames(jobs)
    with tqdm(total=total, unit="frame", desc="convert", disable=not progress, dynamic_ncols=True) as bar:
        done = [len(skipped)]

        def on_result(result: batch.FileResult) -> None:
            done[0] += 1
            bar.set_postfix_str(f"files {done[0]}/{len(jobs) + len(skipped)}")
            if result.status == "failed":
                bar.write(f"livedepth: failed: {result.source}: {result.reason}", file=sys.stderr)

        start = time.perf_counter()
        with Interrupts(pool) as interrupts:
            results = skipped + pool.run(jobs, on_frame=lambda: bar.update(1), on_result=on_result)
        wall = time.perf_counter() - start
    if args.report is not None:
        write_json(args.report, {"results": [r.to_dict() for r in results], "wall_seconds": wall,
                                 "workers": pool.workers, "threads": settings.model.threads, "ray": args.ray,
                                 "peak_rss_mb": pool.peak_rss_mb})
    if not quiet:
        say(batch.summary_table(results))
    code = interrupts.exit_code if interrupts.exit_code is not None else 0 if batch.batch_ok(results) else EXIT_USAGE
    if getattr(pool, "head_lost", False):
        # Ray's teardown at exit ends a process whose cluster head is gone with code 1 (or a crash);
        # every output is closed and the summary is out, so the process ends here with its own code.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
