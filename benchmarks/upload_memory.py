"""Memory of ``livedepth serve`` with a live source: the live process, and the upload worker after one photo.

    .venv/bin/python benchmarks/upload_memory.py [--weights PATH] [--config rpi]

Runs the real CLI (``serve --input CLIP --realtime`` on 127.0.0.1, the preset's model settings)
twice after a first start that chooses and exports the backend: with uploads on, POSTing
one 640x480 photo once the live run has processed a few frames, and with ``--no-uploads``.
For each process it reads ``/proc/PID/smaps_rollup``: RSS, and private memory (Private_Clean
+ Private_Dirty: what ending the process gives back). Prints JSON, in MB.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, workspace

PHOTO = ROOT / "tests" / "fixtures" / "test_image_640x480.png"


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) / 1024
    return {"rss": round(fields["Rss"]), "private": round(fields["Private_Clean"] + fields["Private_Dirty"])}


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return found


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def measure(weights: Path, clip: Path, config: str, uploads: bool) -> dict:
    command = [sys.executable, "-m", "livedepth", "serve", "--config", config, "--host", "127.0.0.1", "--port", "0",
               "--input", str(clip), "--realtime", "--weights", str(weights)] + ([] if uploads else ["--no-uploads"])
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(re.search(r":(\d+)/", proc.stdout.readline()).group(1))
        while json.loads(request(port, "GET", "/stats")[1])["frames_processed"] < 5:
            time.sleep(0.2)
        result = {}
        if uploads:
            status, _ = request(port, "POST", "/depth", PHOTO.read_bytes())
            assert status == 200, status
            workers = [pid for pid in children(proc.pid)
                       if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
            result["upload_worker"] = memory_mb(workers[0])
        result["live_process"] = memory_mb(proc.pid)
        return result
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="default: the synthetic official-layout weights")
    parser.add_argument("--config", default="rpi")
    args = parser.parse_args()
    from support.clips import live_clip

    with workspace(args.weights) as (tmp, weights):
        clip = live_clip(tmp / "clip.mp4", 600, 15.0, (640, 480))
        measure(weights, clip, args.config, False)  # first start: the backend is chosen and exported, once
        report = {"config": args.config, "uploads_on": measure(weights, clip, args.config, True),
                  "uploads_off": measure(weights, clip, args.config, False)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
