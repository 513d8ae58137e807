"""Live processed FPS with five concurrent photo uploads of new shapes / the same run without uploads.

    .venv/bin/python benchmarks/uploads_vs_live.py [--weights PATH] [--seconds S] [--rounds R] [--config rpi]

A live run (``build_live_run`` with ``--serve`` on 127.0.0.1, keep-aspect input so every new
photo shape needs a model of its own) processes a 640x480 file on demand, as fast as the model
goes, for S seconds. In every round a viewer loads the page at the start (which readies the
upload worker process); in the "uploads" rounds five threads POST photos of five different
shapes to ``/depth`` at once, one second into the run. Every round starts from a cold export cache (a
fresh copy of the weights), so each upload really builds its model. Rounds alternate; the
ratio of processed FPS (uploads / none) is printed as JSON.
"""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
from fractions import Fraction
from pathlib import Path

from common import benchmark_args, workspace

SHAPES = ((480, 640), (640, 480), (300, 800), (800, 300), (512, 512))  # (height, width)


def upload(port: int, shape: tuple[int, int], results: list) -> None:
    import cv2
    import numpy as np

    h, w = shape
    photo = cv2.GaussianBlur(np.random.default_rng(h * w).integers(0, 255, (h, w, 3), np.uint8), (0, 0), 5)
    body = cv2.imencode(".png", photo)[1].tobytes()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    start = time.perf_counter()
    conn.request("POST", "/depth", body=body, headers={"Content-Type": "image/png"})
    response = conn.getresponse()
    response.read()
    results.append((response.status, time.perf_counter() - start))
    conn.close()


def one_run(weights: Path, clip: Path, config: str | None, seconds: float, uploads: bool) -> dict:
    from livedepth.app.live import build_live_run
    from livedepth.settings import load_settings

    flags = {("live", "input"): str(clip), ("web", "serve"): "127.0.0.1:0", ("live", "display"): False,
             ("model", "keep_aspect"): True, ("live", "max_fps"): "0"}
    settings = load_settings(config, flags)
    run = build_live_run(settings, weights=weights)
    page = http.client.HTTPConnection("127.0.0.1", run.server.port, timeout=60)
    page.request("GET", "/")  # someone opens the page (it readies the upload worker), in every round
    page.getresponse().read()
    page.close()
    results: list = []
    threads = [threading.Thread(target=upload, args=(run.server.port, shape, results)) for shape in SHAPES]
    if uploads:
        threading.Timer(1.0, lambda: [t.start() for t in threads]).start()
    threading.Timer(seconds, run.stop).start()
    stats = run.run()
    if uploads:
        for t in threads:
            t.join()
    return {"fps": stats["fps_processed"], "uploads": results}


def main() -> None:
    args = benchmark_args(__doc__, seconds=20.0, rounds=4, more=lambda p: p.add_argument(
        "--config", help="preset or TOML file (e.g. rpi); keep-aspect and no fps cap are forced"))
    from support.clips import make_clip

    with workspace(args.weights) as (tmp, source_weights):
        clip = tmp / "clip.mp4"
        make_clip(clip, frames=3000, width=640, height=480, rate=Fraction(30), audio=None)
        fps: dict[str, list[float]] = {"none": [], "uploads": []}
        latencies = []
        for r in range(args.rounds):
            for kind in ("none", "uploads") if r % 2 == 0 else ("uploads", "none"):
                fresh = tmp / f"w{r}{kind}"
                fresh.mkdir()
                weights = Path(shutil.copy(source_weights, fresh / source_weights.name))  # cold export cache
                result = one_run(weights, clip, args.config, args.seconds, kind == "uploads")
                fps[kind].append(result["fps"])
                latencies += [round(s, 2) for code, s in result["uploads"] if code == 200]
    none, up = sum(fps["none"]) / len(fps["none"]), sum(fps["uploads"]) / len(fps["uploads"])
    print(json.dumps({"fps_without_uploads": [round(v, 2) for v in fps["none"]],
                      "fps_with_uploads": [round(v, 2) for v in fps["uploads"]],
                      "ratio": round(up / none, 3), "upload_seconds": latencies,
                      "uploads_ok": len(latencies), "uploads_sent": len(SHAPES) * args.rounds}))


if __name__ == "__main__":
    main()
