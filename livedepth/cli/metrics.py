"""``livedepth metrics VIDEO``: temporal consistency (flicker) and clipped pixels of a depth video."""

from __future__ import annotations

import argparse
from pathlib import Path

from livedepth.cli.common import say


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="temporal consistency (flicker) of a depth video",
                       description="Temporal consistency (TC, lower is steadier) and clipped-pixel fraction of a "
                       "depth video. VIDEO is a side-by-side video (input | colorized depth, --layout side); or, "
                       "with --rgb SOURCE, a depth-only video (colorized, 8/16-bit grey such as the --raw mkv) or "
                       "a folder of 16-bit PNGs.")
    p.add_argument("video", type=Path, metavar="VIDEO_OR_DEPTH")
    p.add_argument("--rgb", type=Path, metavar="SOURCE", help="the source video, when VIDEO_OR_DEPTH is depth only")
    p.add_argument("--colormap", default="auto", help="colormap of a colorized depth video (default: guess)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from livedepth.app.metrics import measure_video  # on use: keeps `livedepth --help` fast

    result = measure_video(args.video, args.rgb, args.colormap, progress=not args.quiet and sys.stderr.isatty())
    clipped = "n/a (float depth)" if result.clipped_fraction is None else f"{result.clipped_fraction:.2%}"
    say(f"TC: {result.tc:.4f}")
    say(f"clipped: {clipped}")
    say(f"frames: {result.frames} ({result.valid_fraction:.0%} of pixels passed the occlusion masks)")
    return 0
