"""3D layouts: the stereo warp's time per 640x480 frame, and the live and convert rates with ``sbs``
against ``depth``, measured side by side in one run.

    .venv/bin/python benchmarks/stereo_bench.py [--weights PATH] [--threads N] [--backend NAME]
        [--seconds S] [--rounds R] [--warp-reps N]

1. The warp alone (goal <= 5 ms): ``StereoWarp.views`` (both eyes) on 640x480 frames of the synthetic
   scene (``tests/synthetic_scene.py``, its depth normalised as the colours are), OpenCV at
   ``--threads`` threads; median and 10th percentile ms, at full width and with ``--stereo-size 320``,
   and the whole ``Colorizer.render`` of every layout.
2. Live (goal >= 0.9): ``LivePipeline`` on a 640x480 clip read on demand (no window), ``--layout sbs``
   and ``--layout depth`` in alternating rounds (ABBA): processed FPS, the ratio of the means and the
   median of the per-pair ratios.
3. Convert (goal >= 0.85): the real ``Converter`` (decode, inference, H.264 + AAC) with ``sbs`` and
   ``depth``, alternating: frames/s and their ratios.

Without ``--weights`` the synthetic official-layout weights are used (timing does not depend on the
weight values). Prints one JSON object.
"""

from __future__ import annotations

import json
import time
from fractions import Fraction

import numpy as np
from common import benchmark_args, workspace
from live_vs_model import live_fps


def _ms(samples: list[float]) -> dict[str, float]:
    return {"median": round(float(np.median(samples)) * 1000, 2),
            "p10": round(float(np.percentile(samples, 10)) * 1000, 2)}


def warp_times(threads: int, reps: int) -> dict:
    """Milliseconds of the warp alone and of each layout's whole render, on the synthetic scene."""
    import cv2
    from synthetic_scene import SceneClip

    from livedepth.colorize import LAYOUTS, Colorizer
    from livedepth.stereo import StereoWarp

    cv2.setNumThreads(threads)
    pairs = list(SceneClip(frames_count=10).frames())
    colorizer = Colorizer(normalize="stable")
    greys = [colorizer.near_grey(depth) for _, depth in pairs]
    result = {}
    for size in (0, 320):
        warp = StereoWarp(size=size)
        samples = []
        for i in range(reps + 3):
            frame, grey = pairs[i % len(pairs)][0], greys[i % len(pairs)]
            start = time.perf_counter()
            warp.views(frame, grey)
            if i >= 3:  # the first calls allocate the buffers
                samples.append(time.perf_counter() - start)
        result[f"warp_ms_size_{size or 'full'}"] = _ms(samples)
    renders = {}
    for layout in LAYOUTS:
        layout_colorizer = Colorizer(normalize="stable", layout=layout)
        samples = []
        for i in range(reps // 2 + 3):
            frame, depth = pairs[i % len(pairs)]
            start = time.perf_counter()
            layout_colorizer.render(depth, frame)
            if i >= 3:
                samples.append(time.perf_counter() - start)
        renders[layout] = _ms(samples)["median"]
    result["render_ms_median_by_layout"] = renders
    return result


def main() -> None:
    args = benchmark_args(__doc__, seconds=10.0, rounds=4, more=lambda p: p.add_argument(
        "--warp-reps", type=int, default=200, help="timed warps for each setting"))
    from clips import make_clip

    from livedepth.colorize import Colorizer
    from livedepth.convert import Converter
    from livedepth.estimator import DepthEstimator
    from livedepth.video import probe

    report: dict = {"threads": args.threads, "warp": warp_times(args.threads, args.warp_reps)}
    with workspace(args.weights) as (tmp, weights):
        clip = tmp / "clip.mp4"
        make_clip(clip, frames=round(30 * max(30.0, 3 * args.seconds)), width=640, height=480, rate=Fraction(30),
                  audio=None)
        estimator = DepthEstimator(weights=weights, threads=args.threads, backend=args.backend)
        report["backend"] = estimator.backend_name
        live_fps(estimator, clip, False, 20)  # warm-up
        live: dict[str, list[float]] = {"depth": [], "sbs": []}
        for i in range(args.rounds):  # ABBA order, so a drifting machine load hits both alike
            for layout in ("depth", "sbs") if i % 2 == 0 else ("sbs", "depth"):
                frames = max(20, round((live["depth"][-1] if live["depth"] else 15.0) * args.seconds))
                live[layout].append(live_fps(estimator, clip, False, frames, layout=layout)["fps_processed"])
        report["live"] = _compare(live)
        source = tmp / "convert.mp4"
        make_clip(source, frames=max(20, round(np.mean(live["depth"]) * args.seconds)), width=640, height=480,
                  rate=Fraction(30000, 1001), audio="aac")
        convert: dict[str, list[float]] = {"depth": [], "sbs": []}
        for i in range(args.rounds):
            for layout in ("depth", "sbs") if i % 2 == 0 else ("sbs", "depth"):
                out = tmp / f"out-{layout}-{i}.mp4"
                result = Converter(source, out, probe(source), estimator.predict,
                                   Colorizer(normalize="stable", layout=layout)).run()
                convert[layout].append(result.frames / result.wall_seconds)
                out.unlink()
        report["convert"] = _compare(convert)
    print(json.dumps(report))


def _compare(rates: dict[str, list[float]]) -> dict:
    """Both layouts' rates, the ratio of the means (sbs / depth) and the median of the per-pair ratios."""
    ratios = sorted(s / d for s, d in zip(rates["sbs"], rates["depth"], strict=True))
    return {"depth": [round(v, 2) for v in rates["depth"]], "sbs": [round(v, 2) for v in rates["sbs"]],
            "ratio": round(sum(rates["sbs"]) / sum(rates["depth"]), 3),
            "ratio_median_of_rounds": round(ratios[len(ratios) // 2], 3)}


if __name__ == "__main__":
    main()
