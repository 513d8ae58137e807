"""``livedepth weights [path|fetch|verify] [--model NAME]``: where a model's weights come from; download or check them."""

from __future__ import annotations

import argparse

from livedepth.cli.common import add_config_flags, add_setting_flags, say, settings_from


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="show, fetch or verify a model's weights")
    p.add_argument("action", choices=("path", "fetch", "verify"), nargs="?", default="path")
    add_setting_flags(p, "model", "name")
    add_config_flags(p, preset=None)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from livedepth.app.estimator import weights_config  # on use: torch and timm take seconds to import
    from livedepth.model import registry
    from livedepth.model.network import fetch_and_verify
    from livedepth.model.weights import describe, weights_spec

    settings = settings_from(args)
    spec = registry.get(settings.model.name)
    weights = weights_spec(spec.weights, args.weights, weights_config(settings))
    if args.action == "path":
        say(describe(weights))
        return 0
    say(fetch_and_verify(spec, weights, download=args.action == "fetch"))
    return 0
