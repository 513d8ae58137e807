"""Every file livedepth writes gets the permissions the umask gives, like any other program's.

The outputs are written to a temporary name and renamed; ``mkstemp`` would make them 0600.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli_helpers import ROOT
from support.clips import make_clip
from support.golden import TEST_IMAGE


def run_with_umask(umask: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "livedepth", *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, umask=umask)


def modes(folder: Path) -> dict[str, int]:
    """Permission bits of every file under ``folder``, by path relative to it."""
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_follow_the_umask(tmp_path: Path, weights_pt: Path, umask: int, mode: int) -> None:
    weights = tmp_path / "weights" / weights_pt.name  # the ONNX export is written next to it
    weights.parent.mkdir()
    shutil.copy(weights_pt, weights)
    out = tmp_path / "out"
    out.mkdir()
    proc = run_with_umask(umask, "image", str(TEST_IMAGE), str(out / "depth.png"), "--raw", str(out / "depth.npy"),
                          "--size", "64", "--weights", str(weights))
    assert proc.returncode == 0, proc.stderr
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=3)
    proc = run_with_umask(umask, "convert", str(clip), str(out / "depth.mp4"), "--raw", str(out / "raw"),
                          "--size", "64", "--weights", str(weights))
    assert proc.returncode == 0, proc.stderr
    proc = run_with_umask(umask, "live", "--input", str(clip), "--no-display", "--stats", str(out / "stats.json"),
                          "--record", str(out / "live.mp4"), "--size", "64", "--weights", str(weights))
    assert proc.returncode == 0, proc.stderr

    written = modes(out)
    assert {"depth.png", "depth.npy", "depth.mp4", "raw/000000.png", "raw/frames.csv", "raw/depth.json", "stats.json",
            "live.mp4"} <= set(written), sorted(written)
    assert written == dict.fromkeys(written, mode), {name: oct(m) for name, m in written.items()}
    exports = {name: m for name, m in modes(weights.parent).items() if name.endswith(".onnx")}
    assert exports
    assert exports == dict.fromkeys(exports, mode), {name: oct(m) for name, m in exports.items()}
    assert not [p for p in tmp_path.rglob("*.part")], "no temporary file is left behind"
