"""Live depth preview: ``python run_live.py [--camera N | --input SRC] ...`` (same as ``livedepth live``)."""

import sys

from livedepth.cli import entry

if __name__ == "__main__":
    entry(["live", *sys.argv[1:]])
