"""What the command modules share: settings flags, settings loading, signals and output."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Protocol

from livedepth.settings import SECTIONS, Settings, load_settings

#: Exit code for bad input or environment (missing file, bad weights, bad setting, ...).
EXIT_USAGE = 2


def say(message: str) -> None:
    """The CLI's own output on stdout (results a user asked for, not log lines)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def add_setting_flags(parser: argparse.ArgumentParser, section: str, *names: str) -> None:
    """Add the flags of ``[section]``'s settings (all of them, or ``names``).

    Values stay strings here: :func:`load_settings` checks and converts them, so every bad
    value gives the same kind of one-line error. A bool's flag sets it (``--no-x`` clears it).
    """
    for spec in fields(SECTIONS[section]):
        flag = spec.metadata["flag"]
        if flag is None or (names and spec.name not in names):
            continue
        dest = f"{section}.{spec.name}"
        if isinstance(spec.default, bool):
            parser.add_argument(flag, dest=dest, action="store_const", const=not flag.startswith("--no-"),
                                default=None, help=spec.metadata["help"])
        else:
            parser.add_argument(flag, dest=dest, metavar=spec.metadata["metavar"] or spec.name.upper(),
                                help=spec.metadata["help"])


def add_config_flags(parser: argparse.ArgumentParser, preset: str | None) -> None:
    """``--config`` and ``--weights`` (the weights flag wins over ``$LIVEDEPTH_WEIGHTS`` and the config)."""
    default = f" (default: the {preset} preset)" if preset else ""
    parser.add_argument("--config", metavar="FILE_OR_PRESET", help=f"TOML file or preset name{default}")
    parser.add_argument("--weights", metavar="PATH", help="the model's checkpoint (default: the cache, else a download)")
    parser.set_defaults(preset=preset)


def settings_from(args: argparse.Namespace, defaults: Mapping[tuple[str, str], Any] | None = None) -> Settings:
    """The settings for a command: ``defaults``, then ``--config`` (or the command's preset), then flags."""
    flags = {tuple(dest.split(".", 1)): value for dest, value in vars(args).items() if "." in dest}
    return load_settings(args.config or args.preset, flags, defaults)


class Stoppable(Protocol):
    def stop(self, reason: str = ...) -> None: ...

    def abort(self, reason: str = ...) -> None: ...

    @property
    def busy(self) -> bool: ...


def ignore_interrupts() -> None:
    """For worker processes: Ctrl+C reaches the whole process group, and only the parent (its
    :class:`Interrupts`) decides what it means."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Interrupts:
    """Ctrl+C and SIGTERM stop ``target`` cleanly; a second one aborts it (keeping what is flushed).

    Only the CLI installs signal handlers, on the main thread, for the time of a ``with``
    block. ``exit_code`` is 128 + the first signal's number (130, 143), or None.
    """

    REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}

    def __init__(self, target: Stoppable) -> None:
        self.target = target
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signum
            sys.stderr.write(f"livedepth: {self.REASONS[signum]}; finishing the frames in flight "
                             "(again to stop at once)\n")
            self.target.stop(self.REASONS[signum])
        else:
            self.target.abort(self.REASONS[signum])

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.REASONS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self.received is not None and self.target.busy:
            self._die_of_signal()

    def _die_of_signal(self) -> None:
        """The outputs are closed, but a stage is still inside a forward pass (after an abort, or
        a forward slower than the join timeout), which nothing can interrupt, and tearing the
        interpreter down under it can crash. So the process ends the way a program that caught
        the signal should: killed by that same signal."""
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(self.received, signal.SIG_DFL)
        os.kill(os.getpid(), self.received)

    @property
    def signal_name(self) -> str | None:
        return None if self.received is None else signal.Signals(self.received).name

    @property
    def exit_code(self) -> int | None:
        return None if self.received is None else 128 + int(self.received)
