"""``livedepth image INPUT OUTPUT``: colorized depth for one image."""

from __future__ import annotations

import argparse
from pathlib import Path

from livedepth.cli.common import add_config_flags, add_setting_flags, settings_from


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("image", help="depth for one image", description="Colorized depth for one image.")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help="output image (.png, .jpg, ...), or a point cloud (.ply)")
    p.add_argument("--raw", type=Path, metavar="DEPTH.npy", help="also save the float32 depth")
    add_setting_flags(p, "render", "layout", "colormap", "normalize", "range", "invert", "alpha")  # never temporal
    add_setting_flags(p, "stereo")
    add_setting_flags(p, "pointcloud")
    add_setting_flags(p, "model")
    add_config_flags(p, preset=None)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from livedepth.app.image import depth_image  # on use: torch takes seconds to import

    depth_image(settings_from(args), args.input, args.output, args.raw, args.weights)
    return 0
