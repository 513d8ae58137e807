"""3D layouts: the stereo warp's time per 640x480 frame, and the live and convert rates with ``sbs``
against ``depth``, measured side by side in one run.

    .venv/bin/python benchmarks/stereo_bench.py [--weights PATH] [--threads N] [--backend NAME]
        [--seconds S] [--rounds R] [--warp-reps N]

1. The warp alone (goal <= 5 ms): ``StereoWarp.views`` (both eyes) on 640x480 frames of the synthetic
   scene (``tests/synthetic_scene.py``, its depth normalised as the colours are), OpenCV at
   ``--threads`` threads; median and 10th percentile ms, and the median CPU ms of the process (all
   threads: on a shared machine the steadier figure), at full width and with ``--stereo-size 320``;
   and the whole ``Colorizer.render`` of every layout.
2. Live (goal >= 0.9): ``LivePipeline`` on a 640x480 clip read on demand (no window) with
   ``--layout depth``, ``--layout sbs`` and ``--layout sbs --stereo-size 320`` in rounds whose order
   alternates (ABC, CBA, ...): processed FPS, and for each sbs arm the ratio of the means to depth's
   and the median of the per-round ratios.
3. Convert (goal >= 0.85): the real ``Converter`` (decode, inference, H.264 + AAC), the same three
   arms, alternating: frames/s and the same ratios.

Without ``--weights`` the synthetic official-layout weights are used (timing does not depend on the
weight values). Prints one JSON object.
"""

from __future__ import annotations

import json
import time
from fractions import Fraction

import numpy as np
from common import benchmark_args, live_clip, workspace
from live_vs_model import live_fps


def _ms(samples: list[float]) -> dict[str, float]:
    return {"median": round(float(np.median(samples)) * 1000, 2),
            "p10": round(float(np.percentile(samples, 10)) * 1000, 2)}


def warp_times(threads: int, reps: int) -> dict:
    """Milliseconds of the warp alone and of each layout's whole render, on the synthetic scene."""
    import cv2
    from support.synthetic_scene import SceneClip

    from livedepth.render.colorize import LAYOUTS, Colorizer
    from livedepth.render.stereo import StereoWarp

    cv2.setNumThreads(threads)
    pairs = list(SceneClip(frames_count=10).frames())
    colorizer = Colorizer(normalize="stable")
    greys = [colorizer.near_gray(depth) for _, depth in pairs]
    result = {}
    for size in (0, 320):
        warp = StereoWarp(size=size)
        samples, cpu = [], []
        for i in range(reps + 3):
            frame, grey = pairs[i % len(pairs)][0], greys[i % len(pairs)]
            start, start_cpu = time.perf_counter(), time.process_time()
            warp.views(frame, grey)
            if i >= 3:  # the first calls allocate the buffers
                samples.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
        result[f"warp_ms_size_{size or 'full'}"] = {**_ms(samples), "cpu_median": _ms(cpu)["median"]}
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
    from support.clips import make_clip

    from livedepth.render.colorize import Colorizer
    from livedepth.run.convert import Converter
    from livedepth.inference.estimator import DepthEstimator
    from livedepth.render.stereo import Stereo
    from livedepth.io.video import probe

    arms = {"depth": lambda: Colorizer(normalize="stable"),
            "sbs": lambda: Colorizer(normalize="stable", layout="sbs"),
            "sbs_size_320": lambda: Colorizer(normalize="stable", layout="sbs", stereo=Stereo(size=320))}
    report: dict = {"threads": args.threads, "warp": warp_times(args.threads, args.warp_reps)}
    with workspace(args.weights, args.model) as (tmp, weights):
        clip = live_clip(tmp, args.seconds)
        estimator = DepthEstimator(args.model, weights=weights, size=args.size, threads=args.threads,
                                   backend=args.backend).load()
        report["backend"] = estimator.backend_name
        live_fps(estimator, clip, False, 20)  # warm-up
        live: dict[str, list[float]] = {name: [] for name in arms}
        for i in range(args.rounds):  # the order alternates, so a drifting machine load hits every arm alike
            for name in list(arms) if i % 2 == 0 else list(arms)[::-1]:
                frames = max(20, round((live["depth"][-1] if live["depth"] else 15.0) * args.seconds))
                live[name].append(live_fps(estimator, clip, False, frames, colorizer=arms[name]())["fps_processed"])
        report["live"] = _compare(live)
        source = tmp / "convert.mp4"
        make_clip(source, frames=max(20, round(np.mean(live["depth"]) * args.seconds)), width=640, height=480,
                  rate=Fraction(30000, 1001), audio="aac")
        convert: dict[str, list[float]] = {name: [] for name in arms}
        for i in range(args.rounds):
            for name in list(arms) if i % 2 == 0 else list(arms)[::-1]:
                out = tmp / f"out-{name}-{i}.mp4"
                result = Converter(source, out, probe(source), estimator.predict, arms[name]()).run()
                convert[name].append(result.frames / result.wall_seconds)
                out.unlink()
        report["convert"] = _compare(convert)
    print(json.dumps(report))


def _compare(rates: dict[str, list[float]]) -> dict:
    """Every arm's rates; for each arm but depth, the ratio of the means to depth's and the median of
    the per-round ratios."""
    report: dict = {name: [round(v, 2) for v in values] for name, values in rates.items()}
    for name, values in rates.items():
        if name != "depth":
            ratios = sorted(v / d for v, d in zip(values, rates["depth"], strict=True))
            report[f"ratio_{name}"] = round(sum(values) / sum(rates["depth"]), 3)
            report[f"ratio_{name}_median_of_rounds"] = round(float(np.median(ratios)), 3)
    return report


if __name__ == "__main__":
    main()
