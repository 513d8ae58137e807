#!/usr/bin/env bash
# Set up on first use (venv, Python packages, Xvfb/xdotool/Chromium for the GUI and browser
# tests, unshare/ip/ss for the Ray cluster in a private network namespace), then run the test
# suite: ./test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh test
missing=()
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v xdotool >/dev/null || missing+=(xdotool)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v unshare >/dev/null && command -v setpriv >/dev/null || missing+=(util-linux)
command -v ip >/dev/null && command -v ss >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test: installing ${missing[*]} (first run only)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "test: missing ${missing[*]}; the tests that need them will be skipped" >&2
    fi
fi
exec "$VENV/bin/python" -m pytest "$@"
