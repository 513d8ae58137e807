"""Every backend against the reference forward, and the seeds' loop against the live pipeline.

    .venv/bin/python benchmarks/inference_bench.py [--model NAME] [--weights PATH] [--threads 1,2]
        [--size 256] [--reps 30] [--warmup 5] [--frames 60] [--json OUT.json]

The same as ``livedepth bench --threads 1,2 --size 256 --end-to-end 60``, plus the end-to-end
run with the int8 backend too. Without ``--weights``, the synthetic official-layout weights
from ``tests/fixtures`` are saved once to ``$TMPDIR/livedepth-bench/`` (timings do not depend
on the weight values; exported models are cached beside them, so later runs start warm).
Prints the table, whether every fp32 row stayed at or under the GEMM peak (a row above it means
the peak was measured too low), then the JSON report.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def synthetic_weights() -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.golden import save_synthetic_weights

    path = Path(tempfile.gettempdir()) / "livedepth-bench" / "midas_v21_small_256.pt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_synthetic_weights(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--model", default="midas-small")
    parser.add_argument("--size", default=None, help="default: the model's default size")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--frames", type=int, default=60, help="end-to-end frames (0: skip)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s")

    from livedepth import bench
    from livedepth.backends.base import is_available
    from livedepth.model import registry

    weights = args.weights or synthetic_weights()
    threads = [int(t) for t in args.threads.split(",")]
    multiple = registry.get(args.model).size_multiple
    report = bench.run_bench(
        weights,
        model=args.model,
        sizes=[bench.parse_size(s, multiple) for s in args.size.split(",")] if args.size else None,
        threads=threads,
        warmup=args.warmup,
        reps=args.reps,
    )
    if args.frames:
        report["end_to_end"] = bench.end_to_end(weights, "auto", max(threads), args.frames, model=args.model)
        if is_available("int8"):
            report["end_to_end_int8"] = bench.end_to_end(weights, "int8", max(threads), args.frames,
                                                         model=args.model)
    print(bench.format_table(report))
    over = [f"{r['backend']} {r['threads']}t {r['size']}" for r in report["results"]
            if r["pct_peak"] is not None and r["pct_peak"] > 100]
    print(f"fp32 rows at or under the GEMM peak: {'yes' if not over else 'no: ' + ', '.join(over)}")
    if "end_to_end_int8" in report:
        e = report["end_to_end_int8"]
        print(f"end to end, int8: seeds' loop {e['seeds_fps']:.1f} fps, live {e['live_fps']:.1f} fps, "
              f"x{e['ratio']:.2f}")
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
