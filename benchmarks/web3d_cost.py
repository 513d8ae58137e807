"""What the web page's 3D view costs: on the live path (publishing) and per frame a viewer asks for.

    .venv/bin/python benchmarks/web3d_cost.py [--seconds S] [--rounds R]

640x480 frames of the synthetic scene, with their normalised grey. Side by side, in alternating
rounds: ``FrameHub.publish`` of the rendered image alone (before the 3D view) and with the frame
and grey (now; the encoding waits for a viewer), and, per new frame, the 3D view's RGBD PNG
against the flat stream's JPEG of the same frame. Prints one JSON object.
"""

from __future__ import annotations

import json
import time

from common import benchmark_args


def per_call_us(call, values: list, seconds: float) -> float:
    """Microseconds per ``call(value)``, cycling through ``values`` for about ``seconds``."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call(values[count % len(values)])
        count += 1
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    args = benchmark_args(__doc__, seconds=1.0, rounds=6)
    from support.synthetic_scene import SceneClip

    from livedepth.render.colorize import Colorizer
    from livedepth.web import FrameHub

    colorizer = Colorizer(normalize="stable")
    frames = []
    for frame, depth in SceneClip(640, 480, frames_count=30).frames():
        near = colorizer.near_gray(depth)
        frames.append((colorizer.render(depth, frame, near), frame, near))
    hub = FrameHub(jpeg_quality=80)
    calls = {
        "publish_flat": lambda item: hub.publish(item[0]),  # before the 3D view
        "publish_with_3d": lambda item: hub.publish(*item),
        "publish_and_jpeg": lambda item: (hub.publish(*item), hub.jpeg()),  # a flat-stream viewer
        "publish_and_rgbd_png": lambda item: (hub.publish(*item), hub.rgbd_png()),  # a 3D viewer
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(args.rounds):  # alternating order, so a drifting machine load hits all alike
        for name in calls if i % 2 == 0 else reversed(calls):
            times[name].append(per_call_us(calls[name], frames, args.seconds))
    mean = {name: sum(values) / len(values) for name, values in times.items()}
    jpeg = mean["publish_and_jpeg"] - mean["publish_with_3d"]
    png = mean["publish_and_rgbd_png"] - mean["publish_with_3d"]
    print(json.dumps({
        "publish_flat_us": round(mean["publish_flat"], 2),
        "publish_with_3d_us": round(mean["publish_with_3d"], 2),
        "stream_jpeg_640x480_ms": round(jpeg / 1000, 3),
        "rgbd_png_320x120_ms": round(png / 1000, 3),
        "png_over_jpeg": round(png / jpeg, 3),
        "jpeg_bytes": len(hub.jpeg()[1]),
        "rgbd_png_bytes": len(hub.rgbd_png()[1]),
    }))


if __name__ == "__main__":
    main()
