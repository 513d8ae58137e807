"""``livedepth bench``: report schema, interleaving and the end-to-end baseline (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from support.cli_helpers import run_cli
from livedepth import bench
from livedepth.backends.base import is_available
from livedepth.core.errors import LivedepthError

ROW_KEYS = {"backend", "threads", "size", "median_ms", "p90_ms", "gflops", "pct_peak"}


def _check_row(row: dict) -> None:
    assert ROW_KEYS <= set(row)
    assert isinstance(row["backend"], str) and isinstance(row["threads"], int) and isinstance(row["size"], str)
    for key in ("median_ms", "p90_ms", "gflops", "pct_peak"):
        assert isinstance(row[key], float) and row[key] > 0, (key, row)
    assert row["p90_ms"] >= row["median_ms"]


def test_interleave_rotates_and_counts() -> None:
    order: list[str] = []
    runners = {name: (lambda n=name: order.append(n)) for name in "abc"}
    times = bench.interleave(runners, warmup=1, reps=3)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert order[:3] == ["a", "b", "c"] and order[3:6] == ["b", "c", "a"] and order[6:9] == ["c", "a", "b"]
    assert all(ms >= 0 for v in times.values() for ms in v)


@pytest.mark.parametrize(("text", "hw"), [("256", (256, 256)), ("192x256", (192, 256))])
def test_parse_size(text: str, hw: tuple[int, int]) -> None:
    assert bench.parse_size(text) == hw


@pytest.mark.parametrize("text", ["250", "axb", "64x64x64", "0"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(LivedepthError):
        bench.parse_size(text)


def test_run_bench_report_schema(weights_pt) -> None:
    report = bench.run_bench(
        weights_pt, sizes=[(64, 96)], threads=[1], backend_names=["torch"], warmup=0, reps=2, startup=False
    )
    rows = report["results"]
    assert [r["backend"] for r in rows] == ["reference", "torch"]
    for row in rows:
        _check_row(row)
        assert row["threads"] == 1 and row["size"] == "64x96"
    assert isinstance(report["peak_gflops"], float) and report["peak_gflops"] > 0
    assert rows[0]["speedup"] == 1.0
    # The reference runs the official fusion order, which costs more FLOPs than livedepth's.
    ref, fast = rows
    assert ref["gflops"] * ref["median_ms"] > fast["gflops"] * fast["median_ms"]
    json.dumps(report)


@pytest.mark.slow
def test_cli_bench_json_with_startup(weights_pt, tmp_path) -> None:
    name = "onnx" if is_available("onnx") else "torch"
    out = tmp_path / "bench.json"
    proc = run_cli("bench", "--weights", str(weights_pt), "--threads", "1", "--size", "64", "--backends", name,
                   "--warmup", "0", "--reps", "2", "--gemm-size", "512", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["sgemm_n"] == 512 and "fp32 peak, the fastest 512^3 GEMM" in proc.stdout
    assert [r["backend"] for r in report["results"]] == ["reference", name]
    for row in report["results"]:
        _check_row(row)
    assert report["peak_gflops"] > 0
    assert report["results"][0]["startup_s"] is None and report["results"][1]["startup_s"] > 0
    assert "median ms" in proc.stdout and name in proc.stdout


def test_cli_bench_rejects_bad_options(weights_pt) -> None:
    proc = run_cli("bench", "--weights", str(weights_pt), "--threads", "0")
    assert proc.returncode == 2 and "livedepth: error: --threads" in proc.stderr


def test_end_to_end_baseline_and_live_pipeline(weights_pt) -> None:
    result = bench.end_to_end(weights_pt, "torch", threads=1, frames=4)
    assert result["backend"] == "torch" and result["frames"] == 4
    assert result["seeds_fps"] > 0 and result["live_fps"] > 0
    assert result["ratio"] == pytest.approx(result["live_fps"] / result["seeds_fps"], rel=0.02)


@pytest.mark.slow
def test_peak_is_the_best_of_several_gemms(weights_pt, tmp_path) -> None:
    name = "onnx" if is_available("onnx") else "torch"
    out = tmp_path / "bench.json"
    proc = run_cli("bench", "--weights", str(weights_pt), "--threads", "1", "--reps", "2", "--warmup", "1",
                   "--no-startup", "--backends", name, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    rates = report["gemm_gflops_by_threads"]["1"]
    measured = {k: v for k, v in rates.items() if v}
    assert {"torch", "numpy"} <= set(measured), report["gemm_skipped"]
    if is_available("onnx"):
        assert "onnxruntime" in measured, report["gemm_skipped"]
    assert report["peak_source"] == max(measured, key=measured.get)
    assert report["peak_gflops"] == pytest.approx(max(measured.values()), abs=0.1)
    assert report["peak_source_by_threads"] == {"1": report["peak_source"]}
    assert [r["backend"] for r in report["results"]] == ["reference", name]
    for row in report["results"]:
        _check_row(row)
        assert row["peak_source"] == report["peak_source"]
    # The table names the peak's source, and the machine.
    assert f"1 thread(s) {report['peak_gflops']:.0f} ({report['peak_source']})" in proc.stdout
    assert "machine: " in proc.stdout and "% peak" in proc.stdout
    # What someone needs to report figures from another machine (a Raspberry Pi).
    system = report["system"]
    assert system["cpu_model"] and system["machine"] and system["os"] and system["python"]
    assert system["cores"] >= system["available_cores"] >= 1
    assert system["packages"]["torch"] and system["packages"]["numpy"]
    assert report["gflop_by_size"]["256x256"]["livedepth"] == pytest.approx(8.94, abs=0.01)
    assert report["gflop_by_size"]["256x256"]["reference"] == pytest.approx(9.19, abs=0.01)


def test_a_gemm_with_a_wrong_product_never_sets_the_peak(monkeypatch) -> None:
    monkeypatch.setitem(bench._GEMM_BUILDERS, "numpy", lambda a, b, threads: (lambda: a @ b + 1.0))
    runners, skipped = bench.gemm_runners(1, n=256)
    assert "numpy" not in runners and "differs from torch's" in skipped["numpy"]
    assert "torch" in runners
