"""``python -m livedepth``."""

from livedepth.cli import entry

entry()
