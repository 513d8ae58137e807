#!/usr/bin/env bash
# Functional check of the Raspberry Pi install under emulation. Not part of CI: it takes many
# minutes (the first run 30-60, mostly debootstrap and pip under qemu).
#
# It builds once, then reuses, a Debian bookworm arm64 root (debootstrap + qemu-user-static; the
# Pi OS bookworm base: aarch64, Python 3.11, glibc 2.36) with a user `pi` (sudo without password,
# as on Pi OS). Into it go a git snapshot of this working tree (HEAD plus uncommitted and untracked
# files), the synthetic test weights (copied to ~/.cache/livedepth/, as "Offline use" in the
# README says) and short synthetic clips. Then, with a clean environment (nothing of this
# machine's PIP_*, OPENBLAS_*, ... gets in):
#   1. the README's Raspberry Pi install line, as written: its `sudo apt install ...` part as
#      root, the rest (`git clone <snapshot> livedepth && cd livedepth && ./run.sh --config rpi
#      --camera 0 ...`) as pi. There is no camera, so run.sh ends with "cannot open camera 0"
#      (exit 2) after installing everything and loading the model;
#   2. `livedepth image --config rpi`, `livedepth convert` of a short clip, `livedepth serve
#      --config rpi` on 127.0.0.1 with a token (/snapshot.jpg and /stats fetched from this host)
#      and a one-round `livedepth bench` (reference, torch, onnx; at 128x128, like the convert);
#   3. (unless --no-picamera2) the Camera Module path: with a stand-in `picamera2` module in the
#      system's dist-packages and Debian's python3-numpy (the real python3-picamera2 is only in
#      the Raspberry Pi apt repository), the same install must create the venv with system site
#      packages and keep the system's numpy 1.x;
# It prints the versions installed, the venv's size, the backend `auto` chose, every exit code,
# the time of each phase and any traceback, and exits 1 if a step did not end as expected.
#
# TIMINGS UNDER EMULATION MEAN NOTHING: qemu runs aarch64 code many times slower than a Pi.
#
# Usage (as root): scripts/check_pi_emulated.sh [--rebuild-root] [--no-picamera2]
#   --rebuild-root   build the arm64 root again instead of reusing the cached one
#   --no-picamera2   skip step 3
# Environment:
#   LIVEDEPTH_PI_CACHE   folder for the cached root, the inputs and the logs
#                        (default /var/tmp/livedepth-pi-emu; never inside the repository)
#   LIVEDEPTH_PI_MIRROR  Debian mirror for debootstrap (default: the one apt on this machine uses)
#   LIVEDEPTH_PI_PORT    port for `livedepth serve` on 127.0.0.1 (default 18080)
# Needs: root, apt (it installs debootstrap, qemu-user-static and binfmt-support if missing), and
# this repository's .venv (made by ./test.sh or ./run.sh) to write the weights and the clips.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${LIVEDEPTH_PI_CACHE:-/var/tmp/livedepth-pi-emu}"
PORT="${LIVEDEPTH_PI_PORT:-18080}"
SUITE=bookworm
R="$CACHE/$SUITE-arm64"          # the cached root
LOGS="$CACHE/logs"               # this run's logs (replaced on every run)
TOKEN=emulated-check
W=/home/pi/.cache/livedepth/midas_v21_small_256.pt   # weights, inside the root
IN=/home/pi/inputs                                   # inputs, inside the root
ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PI_PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games

rebuild=0 picam=1
for arg in "$@"; do
    case "$arg" in
        --rebuild-root) rebuild=1 ;;
        --no-picamera2) picam=0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "check_pi_emulated: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "check_pi_emulated: $*" >&2; exit 2; }
say() { printf '\n== %s\n' "$*"; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd -P)"; R="$CACHE/$SUITE-arm64"; LOGS="$CACHE/logs"
case "$CACHE/" in "$(cd "$REPO" && pwd -P)"/*) die "LIVEDEPTH_PI_CACHE must be outside the repository" ;; esac

exec 9>"$CACHE/.lock"
flock -n 9 || die "another check_pi_emulated run holds $CACHE/.lock"

# ---------------------------------------------------------------- results and timing
declare -A RC=() EXPECT=() NOTE=()
STEPS=() PHASES=()
T0=$SECONDS
phase_t=$SECONDS phase_name=""
phase() {   # phase NAME: close the previous phase (recording its duration), start NAME
    if [ -n "$phase_name" ]; then PHASES+=("$(printf '%6s s  %s' $((SECONDS - phase_t)) "$phase_name")"); fi
    phase_name="$1" phase_t=$SECONDS
    [ -n "$1" ] && say "$1"
    return 0
}

# ---------------------------------------------------------------- mounts, processes, clean-up
mounts_under() { findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d "/") == 1 || $0 == d' | sort -r; }
unmount_under() {
    local m
    for m in $(mounts_under "$1"); do umount "$m" 2>/dev/null || umount -l "$m"; done
}
safe_rm() {   # rm -rf that refuses to cross into a mounted /dev, /proc, ... of a root
    [ -e "$1" ] || return 0
    [ -z "$(mounts_under "$1")" ] || die "refusing to delete $1: something is mounted under it"
    rm -rf --one-file-system "$1"
}
mount_root() {
    mkdir -p "$R/proc" "$R/sys" "$R/dev"
    mountpoint -q "$R/proc" || mount -t proc proc "$R/proc"
    mountpoint -q "$R/sys" || mount -t sysfs -o ro sysfs "$R/sys"
    if ! mountpoint -q "$R/dev"; then
        mount --rbind /dev "$R/dev"
        mount --make-rslave "$R/dev"   # so unmounting it later never propagates to this machine's /dev
    fi
    # qemu-user 7.2 passes this machine's /proc/cpuinfo through; onnxruntime's CPU detection
    # reads it as an Arm one and crashes on `import onnxruntime` (SIGSEGV). A Pi 5's in its place.
    if [ "$(uname -m)" != aarch64 ]; then
        write_pi5_cpuinfo >"$CACHE/cpuinfo-pi5"
        findmnt -rn "$R/proc/cpuinfo" >/dev/null || mount --bind "$CACHE/cpuinfo-pi5" "$R/proc/cpuinfo"
    fi
    cp -L /etc/resolv.conf "$R/etc/resolv.conf"
    trust_local_cas
}
write_pi5_cpuinfo() {   # four Cortex-A76 cores (implementer 0x41, part 0xd0b), as on a Pi 5
    local i
    for i in 0 1 2 3; do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\n' "$i"
        printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n'
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n'
    done
    printf 'Revision\t: d04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0 (emulated)\n'
}
# The CA certificates this machine's admin added (a TLS-intercepting proxy, say) go into the
# root's trust store too, so pip reaches the package index as it does here. A real Pi needs
# the same only behind the same proxy.
trust_local_cas() {
    local crt changed=0
    mkdir -p "$R/usr/local/share/ca-certificates"
    for crt in /usr/local/share/ca-certificates/*.crt; do
        [ -f "$crt" ] || continue
        cmp -s "$crt" "$R/usr/local/share/ca-certificates/${crt##*/}" && continue
        cp "$crt" "$R/usr/local/share/ca-certificates/"
        changed=1
    done
    if [ "$changed" = 1 ]; then
        nice -n 10 env -i PATH="$ROOT_PATH" "$(command -v chroot)" "$R" update-ca-certificates >"$CACHE/ca.log" 2>&1
    fi
    return 0
}
root_pids() {   # processes whose root directory is the emulated root: only this script starts those
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$R" ] && echo "${p#/proc/}"
    done
    return 0
}
stop_pid() {   # stop_pid PID: SIGTERM, then SIGKILL after 20 s
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
}
SERVE_PID="" STEP_PID="" STUB_DIR="$R/usr/lib/python3/dist-packages/picamera2"
cleanup() {
    set +e
    [ -n "$SERVE_PID" ] && stop_pid "$SERVE_PID"
    [ -n "$STEP_PID" ] && stop_pid "$STEP_PID"   # timeout passes the signal on to its process group
    local pid
    for pid in $(root_pids); do echo "check_pi_emulated: stopping leftover process $pid" >&2; stop_pid "$pid"; done
    [ -f "$STUB_DIR/.livedepth-stub" ] && rm -rf "$STUB_DIR"
    [ -d "$R" ] && unmount_under "$R"
    [ -d "$R.partial" ] && unmount_under "$R.partial"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# "${AS_ROOT[@]}" CMD...: run CMD in the root as root; "${AS_PI[@]}" CMD...: as user pi.
# A clean environment (env -i): none of this machine's variables gets in. nice 10: a shared machine.
CHROOT="$(command -v chroot)"
AS_ROOT=(nice -n 10 env -i PATH="$ROOT_PATH" HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive
         "$CHROOT" "$R")
AS_PI=(nice -n 10 env -i PATH="$PI_PATH" HOME=/home/pi USER=pi LOGNAME=pi SHELL=/bin/bash LANG=C.UTF-8 TERM=dumb
       "$CHROOT" --userspec=1000:1000 --groups=1000 "$R")
as_pi() { "${AS_PI[@]}" "$@"; }

shown() {   # the command after "chroot ... ROOT", for the log
    local a seen=0 out=()
    for a in "$@"; do [ "$seen" = 1 ] && out+=("$a"); [ "$a" = "$R" ] && seen=1; done
    [ "$seen" = 1 ] || out=("$@")
    echo "${out[*]}"
}
# step NAME EXPECTED_RCS TIMEOUT CMD...: run, log to $LOGS/NAME.log, record the exit code.
step() {
    local name="$1" expect="$2" limit="$3" rc t=$SECONDS
    shift 3
    echo "-- $name: $(shown "$@")" | cut -c1-300
    # in the background so that Ctrl+C reaches this script (timeout runs in its own process group)
    timeout --kill-after=30 "$limit" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
    STEP_PID=$!
    if wait "$STEP_PID"; then rc=0; else rc=$?; fi
    STEP_PID=""
    RC[$name]=$rc EXPECT[$name]="$expect"
    STEPS+=("$name")
    NOTE[$name]="$((SECONDS - t)) s"
    [ "$rc" = 124 ] && NOTE[$name]+=", timed out after $limit s"
    echo "   exit $rc (expected $expect), $((SECONDS - t)) s; log $LOGS/$name.log"
    tail -n 4 "$LOGS/$name.log" | sed 's/^/   | /'
    return 0
}
check() {   # check NAME OK(0/1) TEXT: a pass/fail that is not a command's exit code
    RC[$1]=$([ "$2" = 1 ] && echo 0 || echo 1) EXPECT[$1]=0 NOTE[$1]="$3"
    STEPS+=("$1")
    echo "-- $1: $([ "$2" = 1 ] && echo ok || echo FAILED): $3"
}

# ---------------------------------------------------------------- host tools
phase "host tools: debootstrap, qemu-user-static, binfmt"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
if [ ${#need[@]} -gt 0 ] && [ "$(uname -m)" != aarch64 ]; then
    echo "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
if [ "$(uname -m)" != aarch64 ]; then
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "cannot register qemu-aarch64 with binfmt_misc"
    # F: the interpreter is opened now, so it need not exist inside the root
    grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
        die "qemu-aarch64 is registered without the F flag; install qemu-user-static's binfmt"
fi

mirror="${LIVEDEPTH_PI_MIRROR:-}"
if [ -z "$mirror" ]; then   # the Debian archive this machine's apt uses
    targets="$(apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' 2>/dev/null | sort -u)"
    mirror="$(awk -v s="$SUITE" '$2 == s && $3 == "main" {print $1; exit}' <<<"$targets")"
    [ -n "$mirror" ] || mirror="$(awk '$3 == "main" && $2 ~ /^(bullseye|bookworm|trixie|forky|sid|oldstable|stable|testing|unstable)$/ {print $1; exit}' <<<"$targets")"
    [ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources; set LIVEDEPTH_PI_MIRROR"
fi
echo "Debian mirror: $mirror"

# ---------------------------------------------------------------- the arm64 root (cached)
if [ "$rebuild" = 1 ] && [ -d "$R" ]; then unmount_under "$R"; safe_rm "$R"; fi
if [ ! -f "$R/.livedepth-root-ok" ]; then
    phase "build the $SUITE arm64 root in $R (once)"
    [ -d "$R" ] && { unmount_under "$R"; safe_rm "$R"; }
    part="$R.partial"
    unmount_under "$part"
    if [ ! -f "$part/.debootstrap-done" ]; then
        safe_rm "$part"
        # Pi OS Lite has python3, ca-certificates and sudo; the README's line installs the rest.
        if ! nice -n 10 env -i PATH="$ROOT_PATH" debootstrap --arch=arm64 --variant=minbase \
                --include=python3,ca-certificates,sudo "$SUITE" "$part" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
            tail -n 20 "$CACHE/debootstrap.log" >&2
            unmount_under "$part"
            die "debootstrap failed; log in $CACHE/debootstrap.log"
        fi
        unmount_under "$part"
        touch "$part/.debootstrap-done"
    fi
    cp -L /etc/resolv.conf "$part/etc/resolv.conf"
    echo raspberrypi >"$part/etc/hostname"
    grep -q raspberrypi "$part/etc/hosts" 2>/dev/null || echo "127.0.1.1 raspberrypi" >>"$part/etc/hosts"
    nice -n 10 env -i PATH="$ROOT_PATH" chroot "$part" sh -c \
        'id pi >/dev/null 2>&1 || useradd -m -u 1000 -U -G sudo -s /bin/bash pi'
    [ "$(nice -n 10 env -i PATH="$ROOT_PATH" chroot "$part" id -g pi)" = 1000 ] || die "user pi must have gid 1000"
    echo 'pi ALL=(ALL) NOPASSWD: ALL' >"$part/etc/sudoers.d/010_pi-nopasswd"
    chmod 0440 "$part/etc/sudoers.d/010_pi-nopasswd"
    # a Pi image comes with its package lists
    nice -n 10 env -i PATH="$ROOT_PATH" HOME=/root LANG=C.UTF-8 chroot "$part" apt-get update -qq \
        >"$CACHE/apt-update.log" 2>&1 || { tail -n 20 "$CACHE/apt-update.log" >&2; die "apt-get update failed in the root"; }
    mv "$part" "$R"
    touch "$R/.livedepth-root-ok"
else
    phase "reuse the arm64 root in $R"
fi

# ---------------------------------------------------------------- inputs and the repository snapshot
phase "inputs: repository snapshot, synthetic weights, clips"
safe_rm "$LOGS"; mkdir -p "$LOGS"
HOSTPY="$REPO/.venv/bin/python"
if [ ! -x "$HOSTPY" ]; then
    (cd "$REPO" && source scripts/bootstrap.sh) || die "cannot make $REPO/.venv for the test inputs"
fi
mkdir -p "$CACHE/inputs"
npz="$REPO/tests/fixtures/midas_v21_small_256_synthetic_ternary.npz"
if [ ! -s "$CACHE/inputs/midas_v21_small_256.pt" ] || [ "$npz" -nt "$CACHE/inputs/midas_v21_small_256.pt" ]; then
    (cd "$REPO/tests" && "$HOSTPY" -c 'import sys; from pathlib import Path; from golden import save_synthetic_weights
save_synthetic_weights(Path(sys.argv[1]))' "$CACHE/inputs/midas_v21_small_256.pt.tmp")
    mv "$CACHE/inputs/midas_v21_small_256.pt.tmp" "$CACHE/inputs/midas_v21_small_256.pt"
fi
# short.mp4: 4 frames with AAC audio for convert; live.mp4: 120 s at 10 fps for serve --realtime
(cd "$REPO/tests" && "$HOSTPY" -c 'import sys; from fractions import Fraction; from pathlib import Path
from clips import make_clip
make_clip(Path(sys.argv[1]) / "short.mp4", frames=4, width=160, height=120)
make_clip(Path(sys.argv[1]) / "live.mp4", frames=1200, width=160, height=120, rate=Fraction(10), audio=None)' "$CACHE/inputs")
cp "$REPO/tests/fixtures/test_image_640x480.png" "$CACHE/inputs/photo.png"

# the working tree (tracked, modified and untracked files; not what .gitignore ignores) as a git repo
snap="$CACHE/src"
safe_rm "$snap"; mkdir -p "$snap"
(cd "$REPO" && git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -cf -) | tar -C "$snap" -xf -
git -C "$snap" init -q
git -C "$snap" add -A
git -C "$snap" -c user.name=check_pi_emulated -c user.email=check@localhost commit -q -m "working tree of $REPO"
echo "snapshot of $REPO ($(git -C "$REPO" rev-parse --short HEAD) + working tree): $(git -C "$snap" ls-files | wc -l) files"

mount_root
rm -rf "$STUB_DIR"   # a stand-in left by an interrupted run
safe_rm "$R/srv/livedepth"; safe_rm "$R/home/pi/inputs"; safe_rm "$R/home/pi/.cache/livedepth"
cp -a "$snap" "$R/srv/livedepth"
mkdir -p "$R$IN" "$R/home/pi/.cache/livedepth"
cp "$CACHE/inputs/short.mp4" "$CACHE/inputs/live.mp4" "$CACHE/inputs/photo.png" "$R$IN/"
cp "$CACHE/inputs/midas_v21_small_256.pt" "$R$W"
chown -R 1000:1000 "$R/srv/livedepth" "$R$IN" "$R/home/pi/.cache"

# ---------------------------------------------------------------- the README's install line
line="$(awk '/^## Raspberry Pi/ {f = 1; next} /^## / {f = 0} f' "$REPO/README.md" | grep -m1 -E '^sudo apt install .*&& git clone ' || true)"
[ -n "$line" ] || die "no 'sudo apt install ... && git clone ...' line in the README's Raspberry Pi section"
case "$line" in *"<this repository>"*) ;; *) die "the README's install line has no <this repository>: $line" ;; esac
apt_part="${line%% && git clone *}"
pi_part="git clone ${line#* && git clone }"
pi_part="${pi_part//<this repository>//srv/livedepth}"
echo "README: $line"

# install WORKDIR PREFIX: the README's line in WORKDIR (it clones ./livedepth there)
install() {
    local wd="$1" p="$2"
    safe_rm "$R$wd"; mkdir -p "$R$wd"; chown 1000:1000 "$R$wd"
    step "$p-apt" 0 1800 "${AS_ROOT[@]}" sh -c "$apt_part"
    step "$p-install-run.sh" 2 7200 "${AS_PI[@]}" bash -c "cd $wd && $pi_part"
    grep -q 'cannot open camera 0' "$LOGS/$p-install-run.sh.log" &&
        NOTE[$p-install-run.sh]+=", ended with 'cannot open camera 0' (no camera here), as expected"
    return 0
}

versions() {   # versions VENV_PYTHON LOG
    as_pi "$1" -c '
import importlib.metadata as md, platform, sys
print("python", platform.python_version(), "| machine", platform.machine(), "| glibc", platform.libc_ver()[1])
for d in ("torch", "torchvision", "timm", "onnxruntime", "onnx", "openvino", "opencv-python-headless",
          "opencv-python", "numpy", "av"):
    try:
        print(d, md.version(d))
    except md.PackageNotFoundError:
        print(d, "-")
cuda = sorted(x.metadata["Name"] for x in md.distributions() if x.metadata["Name"].lower().startswith(("nvidia-", "cuda-", "triton")))
print("CUDA packages:", ", ".join(cuda) or "none")
import numpy
print("numpy from", numpy.__file__)
' >"$2" 2>&1
}

# ---------------------------------------------------------------- 1 + 2: USB camera install and the commands
phase "1. README install line (USB camera), in /home/pi/usb"
install /home/pi/usb usb
L=/home/pi/usb/livedepth V=/home/pi/usb/livedepth/.venv OUT=/home/pi/usb/out
if [ ! -x "$R$V/bin/livedepth" ]; then
    check usb-venv 0 "no $V/bin/livedepth after the install"
else
    as_pi mkdir -p "$OUT"
    versions "$V/bin/python" "$LOGS/usb-versions.log" || true
    grep -q 'include-system-site-packages = false' "$R$V/pyvenv.cfg" &&
        check usb-venv 1 "venv without system site packages (no picamera2)" ||
        check usb-venv 0 "$(grep include-system "$R$V/pyvenv.cfg")"

    phase "2. livedepth image / convert / serve / bench"
    step image 0 1800 "${AS_PI[@]}" "$V/bin/livedepth" image "$IN/photo.png" "$OUT/depth.png" --config rpi --weights "$W"
    # --size 128: a forward takes about a minute under qemu (the preset's 256x256 would take 2-3)
    step convert 0 3600 "${AS_PI[@]}" "$V/bin/livedepth" convert "$IN/short.mp4" "$OUT/depth.mp4" --size 128 \
        --weights "$W"
    if [ "${RC[convert]}" = 0 ]; then
        frames="$(as_pi "$V/bin/python" -c 'import av, sys
with av.open(sys.argv[1]) as c:
    print(sum(1 for _ in c.decode(video=0)), len(c.streams.audio))' "$OUT/depth.mp4" 2>&1 | tail -n 1)"
        [ "$frames" = "4 1" ] && check convert-output 1 "4 frames and the audio stream" ||
            check convert-output 0 "frames, audio streams: $frames (expected 4 1)"
    fi

    echo "-- serve: $V/bin/livedepth serve --config rpi --input $IN/live.mp4 --realtime --host 127.0.0.1 --port $PORT --token ..."
    t=$SECONDS
    "${AS_PI[@]}" "$V/bin/livedepth" serve --config rpi --input "$IN/live.mp4" --realtime \
        --host 127.0.0.1 --port "$PORT" --token "$TOKEN" --weights "$W" >"$LOGS/serve.log" 2>&1 </dev/null &
    SERVE_PID=$!
    url="http://127.0.0.1:$PORT"
    processed=0
    for _ in $(seq 600); do   # model load and the first frames under qemu: minutes
        kill -0 "$SERVE_PID" 2>/dev/null || break
        if curl --noproxy '*' -fsS -o "$LOGS/stats.json" "$url/stats?token=$TOKEN" 2>/dev/null; then
            processed="$(sed -nE 's/.*"frames_processed": *([0-9]+).*/\1/p' "$LOGS/stats.json")"
            [ "${processed:-0}" -ge 2 ] && break
        fi
        sleep 2
    done
    code="$(curl --noproxy '*' -s -o "$LOGS/snapshot.jpg" -w '%{http_code}' "$url/snapshot.jpg?token=$TOKEN" || true)"
    magic="$(head -c 2 "$LOGS/snapshot.jpg" 2>/dev/null | od -An -tx1 | tr -d ' ')"
    [ "$code" = 200 ] && [ "$magic" = ffd8 ] &&
        check serve-snapshot 1 "GET /snapshot.jpg: 200, a $(stat -c %s "$LOGS/snapshot.jpg")-byte JPEG" ||
        check serve-snapshot 0 "GET /snapshot.jpg: HTTP ${code:-none}, starts with ${magic:-nothing}"
    code="$(curl --noproxy '*' -s -o "$LOGS/stats.json" -w '%{http_code}' "$url/stats?token=$TOKEN" || true)"
    [ "$code" = 200 ] && grep -q '"frames_processed"' "$LOGS/stats.json" &&
        check serve-stats 1 "GET /stats: 200, $(tr -d '\n' <"$LOGS/stats.json" | cut -c1-160)..." ||
        check serve-stats 0 "GET /stats: HTTP ${code:-none}"
    code="$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' "$url/stats" || true)"
    [ "$code" = 401 ] && check serve-token 1 "GET /stats without the token: 401" ||
        check serve-token 0 "GET /stats without the token: HTTP ${code:-none} (expected 401)"
    if kill -0 "$SERVE_PID" 2>/dev/null; then
        kill -TERM "$SERVE_PID"
        for _ in $(seq 120); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.5; done
    fi
    stop_pid "$SERVE_PID"
    if wait "$SERVE_PID"; then rc=0; else rc=$?; fi
    SERVE_PID=""
    RC[serve]=$rc EXPECT[serve]="0 143" NOTE[serve]="$((SECONDS - t)) s, stopped with SIGTERM"
    if [ "$rc" = 134 ] && grep -q 'did not end within' "$LOGS/serve.log"; then
        # A forward takes 1-2 minutes under qemu, longer than livedepth's wait for the inference
        # thread at shutdown; exiting under a running ONNX Runtime call then aborts. Reported, and
        # not counted: a Pi's forward is well under that wait.
        EXPECT[serve]="0 143 134"
        NOTE[serve]+="; 134 = SIGABRT: the inference thread (one forward takes minutes here) outlived the shutdown wait, see the log"
    fi
    STEPS+=(serve)
    echo "   serve exit $rc (SIGTERM: 143 or 0 expected); log $LOGS/serve.log"

    # not int8: its calibration runs the model on many frames, over half an hour under qemu; small
    # GEMMs for the peak: four 2048^3 ones did not end within the hour under qemu
    step bench 0 3600 "${AS_PI[@]}" "$V/bin/livedepth" bench --threads 1 --reps 1 --warmup 0 --no-startup \
        --size 128 --gemm-size 256 --backends torch,onnx,openvino --weights "$W"
fi
USB_SIZE="$(du -sh "$R$V" 2>/dev/null | cut -f1 || true)"

# ---------------------------------------------------------------- 3: Camera Module (picamera2) install
if [ "$picam" = 1 ]; then
    phase "3. README install line with picamera2 (stand-in), in /home/pi/picam"
    step picam-apt-numpy 0 1800 "${AS_ROOT[@]}" apt-get install -y -q --no-install-recommends python3-numpy
    mkdir -p "$STUB_DIR"
    touch "$STUB_DIR/.livedepth-stub"
    cat >"$STUB_DIR/__init__.py" <<'EOF'
"""Stand-in for python3-picamera2 (Raspberry Pi apt repository), by livedepth's check_pi_emulated.sh."""
import numpy  # noqa: F401  the real one and its apt modules (simplejpeg, ...) are built against this numpy
__version__ = "stand-in"
EOF
    install /home/pi/picam picam
    PV=/home/pi/picam/livedepth/.venv
    if [ -x "$R$PV/bin/python" ]; then
        grep -q 'include-system-site-packages = true' "$R$PV/pyvenv.cfg" &&
            check picam-venv 1 "venv with system site packages" ||
            check picam-venv 0 "$(grep include-system "$R$PV/pyvenv.cfg")"
        versions "$PV/bin/python" "$LOGS/picam-versions.log" || true
        step picam-import 0 900 "${AS_PI[@]}" "$PV/bin/python" -c 'import picamera2, numpy, cv2, torch, av, livedepth
print("picamera2", picamera2.__file__); print("numpy", numpy.__version__, numpy.__file__)
assert numpy.__file__.startswith("/usr/lib/python3/dist-packages/"), "the venv has its own numpy"'
        step picam-image 0 1800 "${AS_PI[@]}" "$PV/bin/livedepth" image "$IN/photo.png" /home/pi/picam/depth.png \
            --config rpi --weights "$W"
        PICAM_SIZE="$(du -sh "$R$PV" | cut -f1)"
    else
        check picam-venv 0 "no venv after the install"
    fi
    rm -rf "$STUB_DIR"
fi

phase ""

# ---------------------------------------------------------------- summary
summary() {
    echo
    echo "================ Raspberry Pi install under emulation: summary ================"
    echo "TIMINGS UNDER EMULATION MEAN NOTHING (qemu-user on $(uname -m)); this is a functional check."
    echo "root: $R (Debian $SUITE arm64, cached), logs: $LOGS"
    echo "README line: $line"
    if [ -f "$LOGS/usb-versions.log" ]; then
        echo "-- installed (USB camera venv, $V):"; sed 's/^/   /' "$LOGS/usb-versions.log"
    fi
    echo "-- venv size: ${USB_SIZE:-?}${PICAM_SIZE:+ (with system site packages: $PICAM_SIZE)}"
    if [ -f "$LOGS/picam-versions.log" ]; then
        echo "-- installed (picamera2 venv, $PV):"
        grep -E '^(numpy|opencv|python)' "$LOGS/picam-versions.log" | sed 's/^/   /'
    fi
    backend="$(grep -hoE 'backend: .* \(auto\)' "$LOGS"/usb-install-run.sh.log "$LOGS"/image.log "$LOGS"/serve.log 2>/dev/null | sort | uniq -c | sed 's/^ *//' || true)"
    echo "-- backend chosen by auto: ${backend:-not found in the logs}"
    left="$(grep -hoE 'auto: leaving .*' "$LOGS"/*.log 2>/dev/null | sort -u || true)"
    [ -z "$left" ] || { echo "-- left out by auto:"; sed 's/^/   /' <<<"$left"; }
    echo "-- exit codes:"
    failed=0
    for s in "${STEPS[@]}"; do
        ok=no
        for e in ${EXPECT[$s]}; do [ "${RC[$s]}" = "$e" ] && ok=yes; done
        [ "$ok" = yes ] || failed=$((failed + 1))
        printf '   %-22s exit %-4s %-4s (expected %s) %s\n' "$s" "${RC[$s]}" "$([ "$ok" = yes ] && echo ok || echo FAIL)" \
            "${EXPECT[$s]// / or }" "${NOTE[$s]:-}"
    done
    echo "-- phases (wall time):"
    for p in "${PHASES[@]}"; do echo "   $p"; done
    printf '   %6s s  total\n' $((SECONDS - T0))
    tb=0
    for f in "$LOGS"/*.log; do
        if grep -q '^Traceback' "$f"; then
            tb=1
            echo "-- traceback in $f:"
            sed -n '/^Traceback/,$p' "$f" | head -n 60 | sed 's/^/   /'
        fi
    done
    [ "$tb" = 1 ] || echo "-- tracebacks: none"
    crashes="$(grep -HE 'terminate called|uncaught target signal|Segmentation fault|Fatal Python error' "$LOGS"/*.log || true)"
    [ -z "$crashes" ] || { echo "-- native crashes:"; sed 's/^/   /' <<<"$crashes"; }
    echo "-- result: $([ "$failed" = 0 ] && echo "all ${#STEPS[@]} steps as expected" || echo "$failed of ${#STEPS[@]} steps NOT as expected")"
}
failed=0
summary >"$LOGS/summary.txt"
cat "$LOGS/summary.txt"
[ "$failed" = 0 ]
