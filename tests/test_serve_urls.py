"""``livedepth serve`` prints every address it can be reached at, checked in a private network
namespace (``unshare -n``) with one made-up interface, so nothing is served beyond it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli_helpers import ROOT
from support.clips import live_clip

#: Inside the namespace: loopback up, and an interface ``ld0`` (dummy, else one end of a veth
#: pair) with one IPv4 and one IPv6 address; the kernel adds IPv6 link-local ones by itself.
NETWORK = """
set -e
ip link set lo up
ip link add ld0 type dummy 2>/dev/null || { ip link add ld0 type veth peer name ld1 && ip link set ld1 up; }
ip addr add 10.99.0.5/24 dev ld0
ip addr add fd00:99::5/64 dev ld0 nodad
ip link set ld0 up
exec "$@"
"""


def unshare_command() -> list[str]:
    return ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]


def namespaces_work() -> bool:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    return subprocess.run([*unshare_command(), "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not namespaces_work(), reason="needs unshare and ip (util-linux, iproute2)")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return live_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=3, fps=15)


def served_urls(host: str, clip: Path, weights: Path) -> list[str]:
    """The URLs ``serve --host HOST`` prints in the namespace; it serves the 3-frame clip and ends."""
    serve = [sys.executable, "-m", "livedepth", "serve", "--input", str(clip), "--host", host, "--port", "8080",
             "--token", "t0k", "--size", "64", "--weights", str(weights)]
    proc = subprocess.run([*unshare_command(), "sh", "-c", NETWORK, "sh", *serve], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    urls = [m.group(1) for line in lines if (m := re.fullmatch(r"serving (http://\S+)", line))]
    assert len(urls) == len(lines), proc.stdout
    return urls


def test_all_interfaces_print_loopback_and_each_interface_address(clip: Path, weights_pt: Path) -> None:
    assert served_urls("0.0.0.0", clip, weights_pt) == ["http://127.0.0.1:8080/?token=t0k",
                                                       "http://10.99.0.5:8080/?token=t0k"]


def test_ipv6_all_interfaces_print_both_families_without_link_local(clip: Path, weights_pt: Path) -> None:
    """``::`` serves IPv4 too (the socket is made dual-stack); fe80:: addresses need a zone a
    browser cannot take, so they are left out."""
    assert served_urls("::", clip, weights_pt) == [
        "http://127.0.0.1:8080/?token=t0k", "http://[::1]:8080/?token=t0k",
        "http://10.99.0.5:8080/?token=t0k", "http://[fd00:99::5]:8080/?token=t0k",
    ]


def test_loopback_prints_only_loopback(clip: Path, weights_pt: Path) -> None:
    assert served_urls("127.0.0.1", clip, weights_pt) == ["http://127.0.0.1:8080/?token=t0k"]
