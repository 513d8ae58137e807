"""Batch conversion: a folder of real files, worker processes, resume, failures, Ctrl+C."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.clips import GOOD, audio_packets, decoded_pts, make_clip, make_library
from support.cli_helpers import run_cli, start_cli
from support.models import MODELS, model_flags

from livedepth.app.batch import plan
from livedepth.core.errors import LivedepthError
from livedepth.io.rawdepth import load_scale
from livedepth.io.video import probe

@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    return make_library(tmp_path_factory.mktemp("library"))


def _convert(*args: str) -> subprocess.CompletedProcess:
    return run_cli("convert", *args, "--size", "64", "--threads", "1", timeout=600)


def _output(out: Path, name: str) -> Path:
    return (out / name).with_suffix(".mp4")


def assert_same_media(library: Path, out: Path) -> None:
    """Every good file's output has its input's frame timestamps and byte-identical audio."""
    for name in GOOD:
        assert decoded_pts(_output(out, name)) == decoded_pts(library / name), name
        assert audio_packets(_output(out, name)) == audio_packets(library / name), name


def test_plan_mirrors_folders_and_globs_and_skips_finished(library, tmp_path):
    jobs, skipped = plan([str(library)], tmp_path)
    assert sorted(str(j.output.relative_to(tmp_path)) for j in jobs) == sorted(
        ["broken.mp4", "ntsc.mp4", "sub/vfr.mp4", "sub/deeper/odd.mp4"])
    assert skipped == []
    jobs, _ = plan([str(library / "sub" / "**" / "*.mkv")], tmp_path)
    assert sorted(str(j.output.relative_to(tmp_path)) for j in jobs) == ["deeper/odd.mp4", "vfr.mp4"]
    (tmp_path / "ntsc.mp4").write_bytes(b"finished earlier")
    jobs, skipped = plan([str(library / "ntsc.mp4"), str(library / "broken.mp4")], tmp_path)
    assert [j.source.name for j in jobs] == ["broken.mp4"] and [s.status for s in skipped] == ["skipped"]
    jobs, skipped = plan([str(library / "ntsc.mp4")], tmp_path, overwrite=True)
    assert len(jobs) == 1 and not skipped
    with pytest.raises(LivedepthError, match="input not found: nowhere"):
        plan(["nowhere"], tmp_path)


@pytest.mark.slow
def test_a_folder_converts_with_two_workers_resumes_and_overwrites(library, tmp_path, weights_pt):
    out, report = tmp_path / "out", tmp_path / "report.json"
    proc = _convert(str(library), str(out), "--jobs", "2", "--report", str(report), "--weights", str(weights_pt))
    assert proc.returncode == 2, proc.stderr  # the broken file fails, the rest completes
    assert "Traceback" not in proc.stderr
    data = json.loads(report.read_text())
    results = {Path(r["source"]).name: r for r in data["results"]}
    assert results["broken.mp4"]["status"] == "failed" and results["broken.mp4"]["reason"]
    assert "\n" not in results["broken.mp4"]["reason"]
    assert data["workers"] == 2 and set(data["peak_rss_mb"]) == {"worker0", "worker1"}, "two worker processes"
    assert all(results[Path(name).name]["status"] == "done" for name in GOOD)
    assert_same_media(library, out)
    assert not _output(out, "broken.mp4").exists() and not list(out.rglob("*.partial*"))
    assert "3 done, 1 failed" in proc.stdout

    stamps = {name: _output(out, name).stat().st_mtime_ns for name in GOOD}
    again = _convert(str(library), str(out), "--report", str(report), "--weights", str(weights_pt))
    statuses = {Path(r["source"]).name: r["status"] for r in json.loads(report.read_text())["results"]}
    assert statuses == {"ntsc.mp4": "skipped", "vfr.mkv": "skipped", "odd.mkv": "skipped", "broken.mp4": "failed"}
    assert again.returncode == 2 and all(_output(out, n).stat().st_mtime_ns == t for n, t in stamps.items())

    redo = _convert(str(library / "ntsc.mp4"), str(library / "sub"), str(out), "--overwrite",
                    "--weights", str(weights_pt))
    assert redo.returncode == 0, redo.stderr
    assert _output(out, "ntsc.mp4").stat().st_mtime_ns != stamps["ntsc.mp4"]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_raw_folders_next_to_each_output_read_back(tmp_path, model_weights, model):
    """``--raw FOLDER`` in a batch: a PNG folder ``NAME.depth/`` next to each output video."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    (inputs / "sub").mkdir(parents=True)
    make_clip(inputs / "a.mp4", frames=4, width=64, height=48, audio=None)
    make_clip(inputs / "sub" / "b.v2.mkv", frames=3, width=63, height=47, codec="ffv1", audio=None)
    proc = run_cli("convert", str(inputs), str(out), "--raw", str(tmp_path / "raw"), "--threads", "1",
                   *model_flags(model, model_weights[model], size=64), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "2 done;" in proc.stdout, proc.stdout
    assert not (tmp_path / "raw").exists(), "each file's raw depth sits next to its output"
    for name in ("a.mp4", "sub/b.v2.mkv"):
        source, folder = inputs / name, (out / name).with_suffix(".depth")
        times, frames = decoded_pts(source)
        assert sorted(p.name for p in folder.iterdir()) == [*(f"{i:06d}.png" for i in range(frames)),
                                                           "depth.json", "frames.csv"]
        assert json.loads((folder / "depth.json").read_text())["frames"] == frames
        rows = (folder / "frames.csv").read_text().splitlines()[1:]
        assert [float(row.split(",")[2]) for row in rows] == pytest.approx([float(t) for t in times], abs=1e-6)
        first = cv2.imread(str(folder / "000000.png"), cv2.IMREAD_UNCHANGED)
        assert first.dtype == np.uint16 and first.shape == (probe(source).height, probe(source).width)
        assert 0 < first.min() < first.max() < 65535  # a real depth map, with headroom on both sides
        assert load_scale(folder).step > 0
    assert not list(out.rglob("*.partial*"))


def _finished(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("clip*.mp4") if ".partial" not in p.name)


@pytest.mark.slow
def test_sigint_mid_batch_keeps_finished_files_and_the_next_run_completes(tmp_path, weights_pt):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i in range(5):
        make_clip(inputs / f"clip{i}.mp4", frames=40, width=96, height=64, audio="aac")
    proc = start_cli("convert", str(inputs), str(out), "--jobs", "1", "--threads", "1", "--size", "256",
                     "--backend", "torch", "--weights", str(weights_pt))
    try:
        deadline = time.monotonic() + 300
        while not _finished(out) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    finished = _finished(out)
    assert 1 <= len(finished) < 5 and "stopped" in stdout
    for output in finished:  # every finished output is whole and plays
        assert decoded_pts(output) == decoded_pts(inputs / output.name)
    assert not list(out.glob("*.partial*")), "nothing is left of the file that was stopped"
    written = {output.name: output.stat().st_mtime_ns for output in finished}

    proc = run_cli("convert", str(inputs), str(out), "--threads", "1", "--size", "64", "--weights",
                   str(weights_pt), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"{5 - len(finished)} done, {len(finished)} skipped;" in proc.stdout, proc.stdout
    assert {name: (out / name).stat().st_mtime_ns for name in written} == written, "finished files are kept as they are"
    for i in range(5):
        assert decoded_pts(out / f"clip{i}.mp4") == decoded_pts(inputs / f"clip{i}.mp4")


@pytest.mark.slow
def test_bad_batch_arguments_are_one_line(library, tmp_path):
    from support.cli_helpers import assert_one_line_error

    assert_one_line_error(run_cli("convert", str(library), str(tmp_path / "x.mp4")), "OUT must be a folder")
    assert_one_line_error(run_cli("convert", str(library), str(tmp_path), "--jobs", "0"), "--jobs 0")
    assert_one_line_error(run_cli("convert", str(tmp_path / "none"), "x", str(tmp_path)), "input not found")
    assert_one_line_error(run_cli("convert", str(library), str(tmp_path), "--raw", "x.png"), "--raw takes a .mkv")


@pytest.mark.slow
def test_jobs_auto_measures_each_split_once_and_reuses_it(tmp_path, weights_pt):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    make_clip(inputs / "a.mp4", frames=6, width=64, height=48, audio=None)
    first = _convert(str(inputs), str(out), "--jobs", "auto", "--weights", str(weights_pt))
    assert first.returncode == 0, first.stderr
    from livedepth.backends.system import available_cores
    from livedepth.app.batch import splits

    measured = [line for line in first.stderr.splitlines() if "frames/s" in line and "--jobs auto" in line]
    assert len(measured) == len(splits(available_cores())), first.stderr
    second = _convert(str(inputs), str(tmp_path / "out2"), "--jobs", "auto", "--weights", str(weights_pt))
    assert second.returncode == 0 and "(measured before)" in second.stderr
    assert "frames/s" not in second.stderr
