"""Live depth preview: ``python run_live.py [--camera N | --input SRC] ...`` (same as ``livedepth live``)."""

import sys

from livedepth.cli import main

if __name__ == "__main__":
    sys.exit(main(["live", *sys.argv[1:]]))
