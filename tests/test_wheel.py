"""The wheel carries the package and its presets: installed outside the repo, ``image`` runs with both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from support.cli_helpers import ROOT

TEST_IMAGE = ROOT / "tests" / "fixtures" / "test_image_640x480.png"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed (without dependencies) into a fresh folder."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(work / "dist"), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next((work / "dist").glob("livedepth-*.whl"))
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    assert (target / "livedepth" / "configs" / "rpi.toml").is_file()
    assert (target / "livedepth" / "web" / "static" / "view3d.js").is_file(), "the web page's 3D view script"
    return target


def test_the_wheel_has_every_module_and_the_page(installed):
    source = ROOT / "livedepth"
    shipped = {p.relative_to(installed / "livedepth") for p in (installed / "livedepth").rglob("*.py")}
    missing = {p.relative_to(source) for p in source.rglob("*.py")} - shipped
    assert not missing, f"not in the wheel: {sorted(map(str, missing))}"
    assert (installed / "livedepth" / "web" / "static" / "index.html").is_file()


def _image(installed: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    out = tmp_path / "depth.png"
    code = "import livedepth, sys; print(livedepth.__file__, file=sys.stderr); from livedepth.cli import entry; entry()"
    return subprocess.run(
        [sys.executable, "-c", code, "image", str(TEST_IMAGE), str(out), *flags],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(installed)},
    )


@pytest.mark.parametrize("flags", [("--config", "rpi"), ()])
def test_installed_wheel_runs_image_with_a_preset(installed, tmp_path, weights_pt, flags):
    proc = _image(installed, tmp_path, "--weights", str(weights_pt), "--layout", "depth", *flags)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0].startswith(str(installed)), "ran the installed copy, not the checkout"
    assert cv2.imread(str(tmp_path / "depth.png")).shape == (480, 640, 3)
    assert (", 4 threads" in proc.stderr) == bool(flags), "the rpi preset's [model] threads = 4 took effect"
