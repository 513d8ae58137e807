"""A Ray driver for the tests: the real ``livedepth`` CLI, run inside ray_netns's private namespace.

``ray_cli_driver.py [--say-after N OUT_DIR MARKER] [--http-server PORT] CLI ARGS...``: once N
finished outputs are in OUT_DIR, print MARKER, on which ray_netns's supervisor acts: its kill
marker SIGKILLs a node (raylet, agents and workers), an interrupt marker sends this driver a
Ctrl+C. ``--http-server`` first serves plain HTTP on 127.0.0.1:PORT (a server that is not Ray).
The CLI runs this checkout's livedepth, whatever the working directory.
"""

from __future__ import annotations

import http.server
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from livedepth.cli import main  # noqa: E402


def say_after(count: int, out_dir: Path, marker: str) -> None:
    while len([p for p in out_dir.rglob("*.mp4") if ".partial" not in p.name]) < count:
        time.sleep(0.1)
    print(marker, flush=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--say-after"]:
        threading.Thread(target=say_after, args=(int(args[1]), Path(args[2]), args[3]), daemon=True).start()
        args = args[4:]
    if args[:1] == ["--http-server"]:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(args[1])), _QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        args = args[2:]
    sys.exit(main(args))
