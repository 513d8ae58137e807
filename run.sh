#!/usr/bin/env bash
# Set up on first use, then run the live depth preview: ./run.sh [--camera N | --input SRC] ...
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh fast
exec "$VENV/bin/python" run_live.py "$@"
