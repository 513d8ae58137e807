"""Time the reference-equivalent eager forward and every livedepth backend, interleaved in one run,
with this machine's fp32 GEMM peak and each backend's start-up time (``livedepth bench``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from livedepth.cli.common import add_config_flags, add_setting_flags, say, settings_from
from livedepth.core.errors import LivedepthError
from livedepth.core.files import check_writable, write_json


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark the backends against the reference forward", description=__doc__)
    p.add_argument("--threads", default="1,2", metavar="N[,N...]", help="thread counts (default 1,2)")
    p.add_argument("--size", metavar="N|HxW[,...]", help="network input sizes (default: the model's, square)")
    p.add_argument("--backends", metavar="NAME[,NAME...]", help="backends to time (default: every installed one)")
    p.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed rounds first (default 3)")
    p.add_argument("--reps", type=int, default=20, metavar="N", help="timed rounds (default 20)")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up (process to first frame) runs")
    p.add_argument("--end-to-end", type=int, default=0, metavar="FRAMES",
                   help="also run the seeds' sequential loop against the live pipeline on FRAMES frames")
    p.add_argument("--gemm-size", type=int, default=2048, metavar="N",
                   help="side of the fp32 GEMMs that give the peak (default 2048; smaller understates it)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON")
    add_setting_flags(p, "model", "name")
    add_config_flags(p, preset=None)
    p.set_defaults(run=run)


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise LivedepthError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise LivedepthError(f"{flag} must be positive integers, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    from livedepth import bench  # on use: torch takes seconds to import
    from livedepth.app.estimator import weights_config
    from livedepth.model import registry

    if args.json is not None:
        check_writable(args.json)
    if args.warmup < 0 or args.reps < 1:
        raise LivedepthError("--warmup must be >= 0 and --reps >= 1")
    if args.gemm_size < 64:
        raise LivedepthError(f"--gemm-size must be at least 64, got {args.gemm_size}")
    settings = settings_from(args)
    model = settings.model.name
    multiple = registry.get(model).size_multiple
    threads = _int_list(args.threads, "--threads")
    report = bench.run_bench(
        args.weights,
        model=model,
        sizes=[bench.parse_size(s, multiple) for s in args.size.split(",") if s] if args.size else None,
        threads=threads,
        backend_names=[b for b in args.backends.split(",") if b] if args.backends else None,
        warmup=args.warmup,
        reps=args.reps,
        startup=not args.no_startup,
        weights_config=weights_config(settings),
        gemm_n=args.gemm_size,
    )
    if args.end_to_end:
        report["end_to_end"] = bench.end_to_end(args.weights, "auto", max(threads), args.end_to_end,
                                                weights_config(settings), model)
    say(bench.format_table(report))
    if args.json is not None:
        write_json(args.json, report)
    return 0
