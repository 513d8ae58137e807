"""A Ray driver for the tests: the real ``livedepth`` CLI, run inside ray_netns's private namespace.

``ray_cli_driver.py [--say-after N OUT_DIR MARKER] CLI ARGS...``: once N finished outputs are in
OUT_DIR, print MARKER, on which ray_netns's supervisor acts: its kill marker SIGKILLs a worker
node (raylet, agents and workers), an interrupt marker sends this driver a Ctrl+C.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from livedepth.cli import main


def say_after(count: int, out_dir: Path, marker: str) -> None:
    while len([p for p in out_dir.rglob("*.mp4") if ".partial" not in p.name]) < count:
        time.sleep(0.1)
    print(marker, flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--say-after"]:
        threading.Thread(target=say_after, args=(int(args[1]), Path(args[2]), args[3]), daemon=True).start()
        args = args[4:]
    sys.exit(main(args))
