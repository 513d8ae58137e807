"""``livedepth weights [path|fetch|verify]``: where the weights come from; download or check them."""

from __future__ import annotations

import argparse

from livedepth.cli.common import add_config_flags, say, settings_from


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="show, fetch or verify the model weights")
    p.add_argument("action", choices=("path", "fetch", "verify"), nargs="?", default="path")
    add_config_flags(p, preset=None)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from livedepth.model import midas  # on use: torch and timm take seconds to import
    from livedepth.model import weights as w

    settings = settings_from(args)
    config = {k: v for k, v in vars(settings.weights).items() if v is not None}
    if args.action == "path":
        say(w.describe(w.weights_spec(args.weights, config)))
        return 0
    say(midas.fetch_and_verify(w.weights_spec(args.weights, config), download=args.action == "fetch"))
    return 0
