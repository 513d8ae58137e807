"""``--ray`` as a user meets it when something is wrong: no cluster, an address where nothing (or
not Ray) listens, a wrong token, a node without livedepth, and the head lost mid-batch.

Real Ray processes, each case in its own private network namespace with only a loopback
interface (tests/support/ray_netns.py), so no Ray traffic leaves 127.0.0.1 and no other Ray on this
machine is visible.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.cli_helpers import ROOT, assert_one_line_error
from support.clips import decoded_pts, make_clip
from support.ray_netns import KILL_MARKER, python_without_livedepth, run_ray_driver
from test_batch_ray import DRIVER, pytestmark  # noqa: F401 - the same skip: ray, root and the namespace tools

pytestmark = [pytestmark, pytest.mark.slow]


def _clips(folder: Path, count: int, frames: int = 30) -> Path:
    folder.mkdir()
    for i in range(count):
        make_clip(folder / f"clip{i:02d}.mp4", frames=frames, width=96, height=64, audio="aac")
    return folder


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory) -> Path:
    return _clips(tmp_path_factory.mktemp("two") / "in", 2, frames=8)


def _convert(inputs: Path, out: Path, weights: Path, *ray_args: str, nodes: int, before: tuple[str, ...] = (),
             size: str = "64", **kwargs):
    args = [*before, "convert", str(inputs), str(out), *ray_args, "--size", size, "--threads", "1",
            "--weights", str(weights)]
    result = run_ray_driver(DRIVER, args, nodes=nodes, cpus_per_node=1, python=sys.executable, timeout=400, **kwargs)
    assert result.report.get("socket_violations") == [], result.report
    assert not result.report.get("wildcard_binds"), result.report
    return result


def _assert_same_timestamps(out: Path, inputs: Path, names) -> None:
    for name in names:
        assert decoded_pts(out / name) == decoded_pts(inputs / name), name


def test_plain_ray_without_a_cluster_starts_a_local_instance_for_the_batch(two_clips, tmp_path, weights_pt):
    out = tmp_path / "out"
    result = _convert(two_clips, out, weights_pt, "--ray", nodes=0)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "starting a local Ray instance for this batch" in result.stderr
    _assert_same_timestamps(out, two_clips, ["clip00.mp4", "clip01.mp4"])


@pytest.mark.parametrize(("ray_args", "before", "fragment"), [
    (["--ray", "auto"], (), "--ray auto: no running Ray cluster found: start one with `ray start --head`"),
    (["--ray", "127.0.0.1:6390"], (), "nothing listens at 127.0.0.1:6390"),
    (["--ray", "127.0.0.1:8265"], ("--http-server", "8265"), "127.0.0.1:8265 answers, but it is not a Ray cluster"),
], ids=["auto", "closed-port", "http-server"])
def test_no_cluster_where_asked_is_one_line_and_writes_nothing(two_clips, tmp_path, weights_pt, ray_args, before,
                                                               fragment):
    out = tmp_path / "out"
    result = _convert(two_clips, out, weights_pt, *ray_args, nodes=0, before=before)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_a_wrong_token_is_one_line_naming_ray_auth_token(two_clips, tmp_path, weights_pt):
    out = tmp_path / "out"
    result = _convert(two_clips, out, weights_pt, "--ray", nodes=1, driver_env={"RAY_AUTH_TOKEN": "not-the-token"})
    assert_one_line_error(result, "refused this machine's token (InvalidAuthToken): set RAY_AUTH_TOKEN")
    assert not out.exists()


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    return python_without_livedepth(tmp_path_factory.mktemp("bare") / "venv")


def test_a_node_without_livedepth_is_named_and_the_others_convert(two_clips, tmp_path, weights_pt, bare_python):
    out = tmp_path / "out"
    # The driver runs from tmp_path: Ray puts its working directory on every worker's sys.path.
    result = _convert(two_clips, out, weights_pt, "--ray", nodes=2, node_python={1: bare_python},
                      node_names={1: "bare-node"}, node_env={0: {"PYTHONPATH": str(ROOT)}}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ray: node bare-node" in result.stderr
    assert "cannot run livedepth: No module named 'livedepth'" in result.stderr
    _assert_same_timestamps(out, two_clips, ["clip00.mp4", "clip01.mp4"])


def test_with_no_node_that_has_livedepth_the_batch_is_one_line(two_clips, tmp_path, weights_pt, bare_python):
    out = tmp_path / "out"
    result = _convert(two_clips, out, weights_pt, "--ray", nodes=1, node_python={0: bare_python},
                      node_names={0: "bare-node"}, cwd=tmp_path)
    assert_one_line_error(result, "no node can run livedepth (node bare-node")
    assert "No module named 'livedepth'" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_losing_the_head_stops_the_batch_and_a_rerun_converts_only_what_is_left(tmp_path, weights_pt):
    inputs, out = _clips(tmp_path / "in", 8, frames=15), tmp_path / "out"
    result = _convert(inputs, out, weights_pt, "--ray", nodes=2, size="256",
                      before=("--say-after", "1", str(out), KILL_MARKER), kill_node=0)
    killed = result.report.get("killed")
    assert killed and killed[0]["index"] == 0, result.supervisor_log[-2000:]
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.report["driver_end_t"] - killed[0]["t"] < 60, "the driver stops within a bounded time"
    assert "ray: the cluster's head (127.0.0.1:6379) does not answer: no new files until it does" in result.stderr
    assert "ray: the cluster's head (127.0.0.1:6379) has not answered for 10 s: stopping the batch" in result.stderr
    finished = sorted(p.name for p in out.glob("*.mp4"))
    left = sorted(set(p.name for p in inputs.iterdir()) - set(finished))
    assert finished and left, "the head was killed mid-batch"
    assert f"ray: {len(left)} of 8 files left ({', '.join(left[:5])}" in result.stderr
    _assert_same_timestamps(out, inputs, finished)  # finished outputs are whole
    assert not list(out.rglob("*.partial*")), "no partial output is left behind"

    rerun = _convert(inputs, out, weights_pt, "--ray", nodes=2, size="256")  # a fresh cluster
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(left)} done, {len(finished)} skipped" in rerun.stdout
    _assert_same_timestamps(out, inputs, sorted(p.name for p in inputs.iterdir()))
    assert not list(out.rglob("*.partial*"))
