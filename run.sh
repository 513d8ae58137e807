#!/usr/bin/env bash
# Set up on first use, then run the live depth preview: ./run.sh [--camera N | --input SRC] ...
# On a Raspberry Pi with python3-picamera2 (apt) the venv is made with --system-site-packages,
# so the Camera Module works too (`--camera picam`); see scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh fast
exec "$VENV/bin/python" run_live.py "$@"
