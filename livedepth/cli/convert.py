"""``livedepth convert INPUT OUTPUT``: every frame of a video to depth, same timestamps, audio copied."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from livedepth.cli.common import Interrupts, add_config_flags, add_setting_flags, say, settings_from

DEFAULTS = {("render", "normalize"): "stable"}


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a video file into a depth video",
                       description="Every frame of a video to depth: same timestamps, audio copied, H.264 mp4.")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help="output video (.mp4, .mov or .mkv)")
    p.add_argument("--quiet", dest="convert_quiet", action="store_true", help="no progress bar or summary")
    add_setting_flags(p, "convert")
    add_setting_flags(p, "render")
    add_setting_flags(p, "model")
    add_config_flags(p, preset="convert")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from livedepth.convert import build_converter, progress_enabled, summary_line
    from livedepth.estimator import build_estimator

    quiet = args.quiet or args.convert_quiet
    settings = settings_from(args, DEFAULTS)
    build_converter(settings, args.input, args.output, lambda image: image)  # checks before the model loads
    estimator = build_estimator(settings, args.weights)
    with tqdm(unit="frame", desc="convert", disable=not progress_enabled(quiet), dynamic_ncols=True,
              leave=False) as bar:
        converter = build_converter(settings, args.input, args.output, estimator.predict, lambda: bar.update(1))
        bar.reset(total=converter.info.frame_count)
        with Interrupts(converter) as interrupts:
            result = converter.run()
            if interrupts.exit_code is not None:
                sys.stderr.write(f"livedepth: interrupted by {interrupts.signal_name}: wrote {result.frames} finished "
                                 f"frames to {result.output} (playable)\n")
    if interrupts.exit_code is not None:
        return interrupts.exit_code
    if not quiet:
        say(summary_line(result))
    return 0
