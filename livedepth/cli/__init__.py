"""The ``livedepth`` command. Each subcommand is a small module that maps its flags to settings
and calls the library; this module parses, sets up logging and turns user errors into one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from livedepth.cli import bench, convert, image, live, metrics, models, weights
from livedepth.cli.common import EXIT_USAGE
from livedepth.core.errors import LivedepthError

log = logging.getLogger("livedepth")

COMMANDS = (image, weights, models, live, convert, bench, metrics)


def build_parser() -> argparse.ArgumentParser:
    """The ``livedepth`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="livedepth", description="Real-time depth (MiDaS and more: livedepth models) on the CPU.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
    return parser


class _TqdmHandler(logging.Handler):
    """Writes log lines through ``tqdm.write``, so they never break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """One-line ``livedepth: ...`` messages on stderr from the ``livedepth`` logger (and Python
    warnings), through tqdm; the root logger is left alone."""
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("livedepth: %(message)s"))
    logging.captureWarnings(True)
    for name in ("livedepth", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
        logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet or getattr(args, "convert_quiet", False))
    # Idle OpenMP threads sleep instead of spinning: on 2 cores spinning starved the capture,
    # display and encode threads (measured, README "Live preview"). OpenMP reads this when
    # torch loads, so it is set before any command imports torch; the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        return args.run(args)
    except LivedepthError as exc:
        sys.stderr.write(f"livedepth: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("livedepth: interrupted\n")
        return 130


def entry(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script, ``python -m livedepth`` and ``run_live.py``."""
    sys.exit(main(argv))
