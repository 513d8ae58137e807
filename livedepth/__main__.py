"""``python -m livedepth``."""

from livedepth.cli import entry

if __name__ == "__main__":  # not when a spawned worker process imports this module
    entry()
