#!/usr/bin/env bash
# Create .venv (or $LIVEDEPTH_VENV) and install livedepth with the given extras, once.
# Usage: source scripts/bootstrap.sh [EXTRAS]; afterwards $VENV/bin/python is ready.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIVEDEPTH_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
stamp="$VENV/.installed-${EXTRAS:-base}-$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "bootstrap: installing livedepth${EXTRAS:+[$EXTRAS]} into $VENV (first run only)" >&2
    log="$VENV/bootstrap.log"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
           "$VENV/bin/python" -m pip install -c "$ROOT/constraints.txt" -e "$ROOT${EXTRAS:+[$EXTRAS]}"; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "bootstrap: pip install failed; full log in $log" >&2
        exit 1
    fi
    touch "$stamp"
fi
