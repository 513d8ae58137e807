"""Batch conversion on a real two-node Ray cluster, sealed in a private network namespace.

Every Ray process runs inside a namespace that has only a loopback interface (tests/support/ray_netns.py),
so no traffic can leave 127.0.0.1; the supervisor also samples every socket and reports any
non-loopback address.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from support.clips import GOOD, decoded_pts, make_clip, make_library
from support.cli_helpers import ROOT
from support.models import model_flags
from support.ray_netns import KILL_MARKER, missing_tools, run_ray_driver
from test_batch import _output, assert_same_media

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(missing_tools()) or __import__("importlib").util.find_spec("ray") is None,
                                 reason=f"needs ray and {', '.join(missing_tools()) or 'root'}")]
DRIVER = ROOT / "tests" / "support" / "ray_cli_driver.py"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    return make_library(tmp_path_factory.mktemp("library"))


def _run(args: list[str], **kwargs):
    result = run_ray_driver(DRIVER, args, nodes=2, cpus_per_node=1, python=sys.executable, timeout=600, **kwargs)
    assert result.report.get("socket_violations") == [], result.report
    assert not result.report.get("wildcard_binds"), result.report
    return result


@pytest.mark.parametrize("model, transfer", [("midas-small", False), ("midas-small", True),
                                             ("depth-anything-v2-small", False)],
                         ids=["shared-storage", "object-store-transfer", "shared-storage-da2"])
def test_a_folder_on_two_nodes_gives_what_the_local_path_gives(library, tmp_path, model_weights, model, transfer):
    out, report = tmp_path / "out", tmp_path / "report.json"
    args = ["convert", str(library), str(out), "--ray", *model_flags(model, model_weights[model], size=64),
            "--threads", "1", "--report", str(report)] + (["--ray-transfer"] if transfer else [])
    result = _run(args)
    assert result.returncode == 2, result.stderr[-3000:]  # the broken file fails, the rest completes
    data = json.loads(report.read_text())
    results = {Path(r["source"]).name: r for r in data["results"]}
    assert results["broken.mp4"]["status"] == "failed"
    assert all(results[Path(name).name]["status"] == "done" for name in GOOD)
    assert data["workers"] == 2 and len(data["peak_rss_mb"]) == 2, "an actor on each node, both alive to the end"
    assert_same_media(library, out)  # what the local path is tested to give
    assert not list(out.rglob("*.partial*")) and not _output(out, "broken.mp4").exists()


def _clips(folder: Path, count: int = 6) -> Path:
    folder.mkdir()
    for i in range(count):
        make_clip(folder / f"clip{i}.mp4", frames=30, width=96, height=64, audio="aac")
    return folder


def test_killing_a_worker_node_mid_batch_still_completes_it(tmp_path, weights_pt):
    inputs, out = _clips(tmp_path / "in"), tmp_path / "out"
    args = ["--say-after", "1", str(out), KILL_MARKER, "convert", str(inputs), str(out), "--ray", "--size", "256",
            "--threads", "1", "--weights", str(weights_pt)]
    result = _run(args)
    assert result.report.get("killed"), result.supervisor_log[-2000:]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "retrying on another worker" in result.stderr
    for i in range(6):
        assert decoded_pts(out / f"clip{i}.mp4") == decoded_pts(inputs / f"clip{i}.mp4")
    assert not list(out.rglob("*.partial*")), "no partial output is left behind"


def test_ctrl_c_on_the_driver_cancels_the_rest_and_keeps_finished_outputs(tmp_path, weights_pt):
    inputs, out = _clips(tmp_path / "in"), tmp_path / "out"
    args = ["--say-after", "1", str(out), "INTERRUPT-NOW", "convert", str(inputs), str(out), "--ray",
            "--size", "256", "--threads", "1", "--weights", str(weights_pt)]
    result = _run(args, interrupt_marker="INTERRUPT-NOW")
    assert result.returncode == 130, result.stderr[-3000:]
    finished = sorted(p for p in out.glob("*.mp4") if ".partial" not in p.name)
    assert 1 <= len(finished) < 6 and "stopped" in result.stdout
    for output in finished:
        assert decoded_pts(output) == decoded_pts(inputs / output.name)
    assert not list(out.rglob("*.partial*"))
