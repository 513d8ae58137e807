"""``auto`` measures the installed faithful fp32 backends once per combination and caches the winner."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest
from support.cli_helpers import assert_one_line_error, run_cli
from support.golden import TEST_IMAGE

from livedepth.backends import auto, system
from livedepth.backends.base import ENV_BACKEND, is_available
from livedepth.backends.openvino import OpenVinoBackend
from livedepth.backends.ort import OnnxBackend
from livedepth.backends.system import cpu_model
from livedepth.core.errors import LivedepthError
from livedepth.inference.estimator import DepthEstimator, synthetic_frames

SLOW_S = 0.15


@pytest.fixture
def two_backends(monkeypatch):
    """Exactly two faithful fp32 backends installed (onnx and openvino), no choice remembered yet."""
    if not (is_available("onnx") and is_available("openvino")):
        pytest.skip("needs onnxruntime and openvino")
    monkeypatch.setattr(auto, "FP32_PREFERENCE", ("onnx", "openvino"))
    monkeypatch.delenv(ENV_BACKEND, raising=False)


@pytest.fixture
def timings(monkeypatch):
    """Each call of the timing function: the backends it timed."""
    calls: list[list[str]] = []
    real = auto.time_forwards

    def counted(runners, batch, *args, **kwargs):
        calls.append(sorted(runners))
        return real(runners, batch, *args, **kwargs)

    monkeypatch.setattr(auto, "time_forwards", counted)
    return calls


def slow_down(monkeypatch, cls) -> None:
    """Make ``cls``'s forwards take SLOW_S longer: only the timing, the result is the real forward's."""
    real = cls.__call__

    def slowed(self, batch):
        time.sleep(SLOW_S)
        return real(self, batch)

    monkeypatch.setattr(cls, "__call__", slowed)


@pytest.mark.parametrize(("slow", "winner"), [(OnnxBackend, "openvino"), (OpenVinoBackend, "onnx")])
def test_auto_picks_the_faster_in_its_own_measurement_and_reuses_it(
    weights_pt, isolated_cache, two_backends, timings, monkeypatch, caplog, slow, winner
):
    slow_down(monkeypatch, slow)
    with caplog.at_level(logging.INFO, logger="livedepth"):
        est = DepthEstimator(weights=weights_pt, size=64, threads=1).load()
    assert est.backend_name == winner
    assert timings == [["onnx", "openvino"]]
    assert f"auto backend: {winner}; median ms per forward at 64x64, 1 thread(s)" in caplog.text
    assert f"backend: {winner} (auto)" in caplog.text

    cache = isolated_cache / f"{auto.AUTO_CACHE}.json"
    (entry,) = json.loads(cache.read_text()).values()
    loser = slow.name
    assert entry["backend"] == winner
    assert entry["median_ms"][loser] >= entry["median_ms"][winner] + SLOW_S * 1000 * 0.9
    combination = entry["combination"]
    assert combination["input"] == "64x64" and combination["threads"] == 1
    assert combination["candidates"] == ["onnx", "openvino"] and combination["cpu"] == cpu_model()
    assert set(combination["versions"]) == {"onnxruntime", "openvino", "torch"}

    # A new start reads the choice back and times nothing.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="livedepth"):
        again = DepthEstimator(weights=weights_pt, size=64, threads=1).load()
    assert again.backend_name == winner and len(timings) == 1
    assert f"auto backend: {winner}, as measured on" in caplog.text
    frame = synthetic_frames(1, 96, 128)[0]
    np.testing.assert_array_equal(again.predict(frame), est.predict(frame))

    # Another combination (here: the thread count) is measured anew.
    DepthEstimator(weights=weights_pt, size=64, threads=2).load()
    assert len(timings) == 2
    assert len(json.loads(cache.read_text())) == 2


def test_a_backend_that_fails_here_is_left_out(weights_pt, two_backends, timings, monkeypatch, caplog):
    def broken(self, height, width):
        raise RuntimeError("no kernels for this CPU")

    monkeypatch.setattr(OpenVinoBackend, "_build", broken)
    with caplog.at_level(logging.WARNING, logger="livedepth"):
        est = DepthEstimator(weights=weights_pt, size=64, threads=1).load()
    assert est.backend_name == "onnx" and timings == [["onnx"]]
    assert "auto: leaving openvino out: RuntimeError: no kernels for this CPU" in caplog.text


def test_a_fast_backend_that_is_not_faithful_here_is_left_out(
    weights_pt, two_backends, timings, monkeypatch, caplog
):
    """OpenVINO made the faster one, but computing in half precision (as an fp16 default on an
    ARM CPU would): ``auto`` must not trade the reference model's output for speed."""
    slow_down(monkeypatch, OnnxBackend)
    real = OpenVinoBackend.__call__

    def half_precision(self, batch):
        return real(self, batch.astype(np.float16).astype(np.float32)).astype(np.float16).astype(np.float32)

    monkeypatch.setattr(OpenVinoBackend, "__call__", half_precision)
    with caplog.at_level(logging.WARNING, logger="livedepth"):
        est = DepthEstimator(weights=weights_pt, size=64, threads=1).load()
    assert est.backend_name == "onnx" and timings == [["onnx"]]
    assert "auto: leaving openvino out: its output differs from the reference model's by" in caplog.text
    assert "auto: leaving onnx out" not in caplog.text


def test_the_environment_and_a_named_backend_override_auto(weights_pt, two_backends, timings, monkeypatch, caplog):
    monkeypatch.setenv(ENV_BACKEND, "openvino")
    with caplog.at_level(logging.INFO, logger="livedepth"):
        est = DepthEstimator(weights=weights_pt, size=64, threads=1).load()
    assert est.backend_name == "openvino" and "backend: openvino (LIVEDEPTH_BACKEND)" in caplog.text
    assert DepthEstimator(weights=weights_pt, size=64, threads=1, backend="onnx").load().backend_name == "onnx"
    assert timings == []
    monkeypatch.setenv(ENV_BACKEND, "tensorrt")
    with pytest.raises(LivedepthError, match="LIVEDEPTH_BACKEND=tensorrt: unknown backend"):
        DepthEstimator(weights=weights_pt, size=64, threads=1).load()


def test_int8_and_bf16_are_never_candidates(weights_pt, isolated_cache, timings, monkeypatch):
    """With int8's runtime installed (and bf16 available: the CPU check says yes), ``auto``
    builds, checks and times every installed fp32 backend and never int8 or bf16: neither a
    preference list nor a change in how candidates are chosen may let reduced precision in."""
    if not is_available("int8"):
        pytest.skip("int8 needs onnxruntime")
    monkeypatch.setattr(system, "cpu_has_bf16", lambda: True)
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    built: list[str] = []
    real = auto.create_backend

    def spied(name, network, **kwargs):
        built.append(name)
        return real(name, network, **kwargs)

    monkeypatch.setattr(auto, "create_backend", spied)
    est = DepthEstimator(weights=weights_pt, size=64, threads=1).load()
    installed = [name for name in ("onnx", "openvino", "torch") if is_available(name)]
    assert sorted(built) == sorted(installed) and not {"int8", "bf16"} & set(built)
    assert est.backend_name in installed
    if len(installed) > 1:
        assert timings == [sorted(installed)]
        (entry,) = json.loads((isolated_cache / f"{auto.AUTO_CACHE}.json").read_text()).values()
        assert entry["combination"]["candidates"] == installed


def test_near_ties_keep_the_preference_order() -> None:
    assert auto.pick_fastest({"onnx": 100.0, "openvino": 95.0}, ["onnx", "openvino"]) == "onnx"
    assert auto.pick_fastest({"onnx": 100.0, "openvino": 80.0}, ["onnx", "openvino"]) == "openvino"
    assert auto.pick_fastest({"torch": 50.0, "onnx": 90.0}, ["onnx", "torch"]) == "torch"


def test_timing_rounds_fit_the_budget() -> None:
    """Slow forwards: the warm-up round took over half the budget, so it is the measurement (how
    long the timing takes in seconds is measured in benchmarks/auto_budget.py, not here)."""
    batch = np.zeros((1, 3, 32, 32), np.float32)
    slow = auto.time_forwards({"a": lambda x: time.sleep(0.3), "b": lambda x: time.sleep(0.3)}, batch, budget_s=1.0)
    assert {k: len(v) for k, v in slow.items()} == {"a": 1, "b": 1}
    assert all(ms >= 300 for v in slow.values() for ms in v)
    fast = auto.time_forwards({"a": lambda x: None, "b": lambda x: None}, batch, budget_s=1.0)
    assert {k: len(v) for k, v in fast.items()} == {"a": auto.AUTO_ROUNDS, "b": auto.AUTO_ROUNDS}


def test_cli_rejects_an_unknown_backend_in_the_environment(weights_pt, tmp_path):
    proc = run_cli("image", str(TEST_IMAGE), str(tmp_path / "o.png"), "--weights", str(weights_pt),
                   env={ENV_BACKEND: "tensorrt"})
    assert_one_line_error(proc, "LIVEDEPTH_BACKEND=tensorrt: unknown backend (choose from auto, torch, onnx")
