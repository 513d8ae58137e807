"""Batch throughput: one file at a time against ``--jobs auto`` and a two-node Ray cluster, one run.

    .venv/bin/python benchmarks/batch_throughput.py [--weights PATH] [--clips 8] [--frames 60]

Eight short 640x480 clips (with AAC audio) are converted three ways with the same total CPUs
(all of this machine's cores): one at a time (``--jobs 1 --threads CORES``), ``--jobs auto``
(the split of cores it measures; its measurement runs first and is not timed), and on a Ray
cluster of two nodes with CORES/2 CPUs each (``--ray --threads 1``), started in a private
network namespace (tests/support/ray_netns.py; needs root, unshare, ip and ray). Each conversion is the
real CLI; wall time is the batch's own (worker start-up included, cluster start-up not).
Prints JSON: files/s, frames/s, the ratios and each worker's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

from common import ROOT, synthetic_weights


def cli(*args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "livedepth", *args], check=True, cwd=ROOT, capture_output=True,
                   env={**os.environ, **(env or {})})


def summary(report: Path) -> dict:
    data = json.loads(report.read_text())
    frames = sum(r["frames"] for r in data["results"])
    files = sum(r["status"] == "done" for r in data["results"])
    wall = data["wall_seconds"]
    return {"files_per_s": round(files / wall, 3), "frames_per_s": round(frames / wall, 2), "wall_s": round(wall, 1),
            "workers": data["workers"], "threads": data["threads"],
            "peak_rss_mb": {k: round(v) for k, v in data["peak_rss_mb"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    from support.clips import make_clip
    from support.ray_netns import run_ray_driver

    from livedepth.backends.system import available_cores

    cores = available_cores()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {"XDG_CACHE_HOME": str(tmp / "cache")}  # a fresh --jobs auto measurement, kept for the timed run
        weights = str(args.weights or synthetic_weights(tmp))
        inputs = tmp / "in"
        inputs.mkdir()
        for i in range(args.clips):
            make_clip(inputs / f"clip{i}.mp4", frames=args.frames, width=640, height=480, rate=Fraction(30))
        common = ["--weights", weights, "--quiet"]
        results = {}
        cli("convert", str(inputs), str(tmp / "one"), *common, "--jobs", "1", "--threads", str(cores), "--report",
            str(tmp / "one.json"), env=env)
        results["one_at_a_time"] = summary(tmp / "one.json")
        cli("convert", str(inputs), str(tmp / "warmup"), *common, "--jobs", "auto", env=env)  # measures, caches
        cli("convert", str(inputs), str(tmp / "auto"), *common, "--jobs", "auto", "--report", str(tmp / "auto.json"),
            env=env)
        results["jobs_auto"] = summary(tmp / "auto.json")
        ray = run_ray_driver(ROOT / "tests" / "support" / "ray_cli_driver.py",
                             ["convert", str(inputs), str(tmp / "ray"), *common, "--ray", "--threads",
                              str(max(1, cores // 2)), "--report", str(tmp / "ray.json")],
                             nodes=2, cpus_per_node=max(1, cores // 2), python=sys.executable, timeout=1800,
                             extra_env=env)
        if ray.returncode != 0:
            raise SystemExit(f"the Ray run failed:\n{ray.stderr[-3000:]}")
        results["ray_two_nodes"] = summary(tmp / "ray.json")
        results["ray_socket_violations"] = ray.report.get("socket_violations")
    one, auto, ray_run = (results[k]["frames_per_s"] for k in ("one_at_a_time", "jobs_auto", "ray_two_nodes"))
    results["auto_vs_one"] = round(auto / one, 3)
    results["ray_vs_auto"] = round(ray_run / auto, 3)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
