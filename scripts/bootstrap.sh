#!/usr/bin/env bash
# Create .venv (or $LIVEDEPTH_VENV) and install livedepth with the given extras, once.
# Usage: source scripts/bootstrap.sh [EXTRAS]; afterwards $VENV/bin/python is ready.
#
# On a Raspberry Pi (aarch64) with the Camera Module stack installed (`sudo apt install
# python3-picamera2`, from the Raspberry Pi apt repository), the venv is created with
# --system-site-packages so that `import picamera2` works in it; an existing venv is switched
# over. Its numpy is then kept at the system's major version (numpy<2 on bookworm), because
# the apt modules picamera2 loads (simplejpeg, ...) are built against it.
# LIVEDEPTH_SYSTEM_SITE_PACKAGES=1 or 0 overrides the detection; elsewhere nothing changes.
#
# Progress: pip's whole output goes to $VENV/bootstrap.log. On a terminal pip shows its own
# progress bars too; otherwise a line per phase and per downloaded wheel says what is going on.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIVEDEPTH_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
BASE_PYTHON="${PYTHON:-python3}"
bootstrap_start=$SECONDS

say() { echo "bootstrap: $*" >&2; }

# Run pip with "$@"; its output is kept in $log.
pip_step() {
    if [ -t 2 ]; then
        "$VENV/bin/python" -m pip "$@" --log "$log" >&2
    else
        "$VENV/bin/python" -m pip "$@" 2>&1 | pip_milestones
    fi
}

# pip's output (stdin) to $log, and its downloads and its install as a line each.
pip_milestones() {
    local line rest names
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$log"
        case "$line" in
            *"Downloading "*)
                rest="${line#*Downloading }"
                say "  downloading ${rest##*/}" ;;
            "Installing collected packages: "*)
                IFS=', ' read -ra names <<<"${line#*: }"
                say "  installing ${#names[@]} packages" ;;
        esac
    done
}

pi_has_picamera2() {
    [ "$(uname -m)" = aarch64 ] || return 1
    if command -v dpkg-query >/dev/null &&
       [ "$(dpkg-query -W -f='${db:Status-Status}' python3-picamera2 2>/dev/null)" = installed ]; then
        return 0
    fi
    [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import picamera2' >/dev/null 2>&1
}

why="picamera2 found"
case "${LIVEDEPTH_SYSTEM_SITE_PACKAGES:-auto}" in
    1) system_site=1 why="LIVEDEPTH_SYSTEM_SITE_PACKAGES=1" ;;
    0) system_site=0 ;;
    *) if pi_has_picamera2; then system_site=1; else system_site=0; fi ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
    if [ "$system_site" = 1 ]; then
        say "$why: creating $VENV with --system-site-packages"
        "$BASE_PYTHON" -m venv --system-site-packages "$VENV"
    else
        say "creating $VENV"
        "$BASE_PYTHON" -m venv "$VENV"
    fi
elif [ "$system_site" = 1 ] && ! grep -qiE '^include-system-site-packages *= *true' "$VENV/pyvenv.cfg"; then
    # What --system-site-packages writes; the installed packages stay.
    say "$why: turning on system site packages in $VENV"
    sed -i -E 's/^(include-system-site-packages *= *).*/\1true/I' "$VENV/pyvenv.cfg"
fi

constraints=(-c "$ROOT/constraints.txt")
mode=""   # part of the stamp's name, so switching modes installs again
if [ "$system_site" = 1 ]; then
    mode=-system-site
    # The numpy that the apt modules were built against (-s: not a ~/.local one).
    sys_numpy="$("$BASE_PYTHON" -s -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)"
    if [ "${sys_numpy%%.*}" = 1 ]; then
        printf 'numpy<2\n' >"$VENV/system-constraints.txt"
        constraints+=(-c "$VENV/system-constraints.txt")
        mode=-system-site-numpy1
    fi
fi
stamp="$VENV/.installed-${EXTRAS:-base}$mode-$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    log="$VENV/bootstrap.log"
    : >"$log"
    say "installing livedepth${EXTRAS:+[$EXTRAS]} into $VENV (first run only; pip's log: $log)"
    if ! { say "upgrading pip" && pip_step install --upgrade pip &&
           say "installing livedepth${EXTRAS:+[$EXTRAS]} and its dependencies (torch, OpenCV, ...)" &&
           pip_step install "${constraints[@]}" -e "$ROOT${EXTRAS:+[$EXTRAS]}"; }; then
        [ -t 2 ] || tail -n 30 "$log" >&2  # on a terminal pip's error is on the screen already
        say "pip install failed; full log in $log"
        exit 1
    fi
    touch "$stamp"
    say "done in $((SECONDS - bootstrap_start)) s"
fi
