"""``livedepth models``: the depth models livedepth can run, with their size rule, size, licence and weights."""

from __future__ import annotations

import argparse

from livedepth.cli.common import say


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the depth models (--model NAME)",
                       description="The depth models --model NAME chooses: name, input size rule, parameters, "
                       "licence and where the weights come from.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from livedepth.model import registry  # on use: the models' modules import torch

    for spec in registry.specs():
        default = " (default)" if spec.name == registry.DEFAULT_MODEL else ""
        say(f"{spec.name}{default}: {spec.description}" if spec.description else f"{spec.name}{default}")
        say(f"  size: {spec.size_rule}")
        say(f"  parameters: {spec.parameters}, licence: {spec.license}")
        sha = f", SHA-256 {spec.weights.sha256}" if spec.weights.sha256 else ""
        say(f"  weights: {spec.weights.filename} from {spec.weights.url}{sha}")
    return 0
