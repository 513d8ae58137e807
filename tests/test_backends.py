"""Inference backends: golden fidelity through DepthEstimator, auto choice, export cache, int8 check."""

from __future__ import annotations

import copy
import logging
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from support.cli_helpers import assert_one_line_error, run_cli
from support.golden import TEST_IMAGE, load_fixture, rel_error

from livedepth.backends import export
from livedepth.backends.auto import auto_candidates
from livedepth.backends.base import ENV_BACKEND, is_available
from livedepth.backends.int8 import INT8_WARN_THRESHOLD
from livedepth.core.errors import LivedepthError
from livedepth.inference.estimator import DepthEstimator, synthetic_frames
from livedepth.model.midas import build_model, fold_batchnorm, static_padding
from livedepth.model.network import load_network

FP32 = ["torch", "onnx", "openvino"]


def _require(name: str) -> None:
    if not is_available(name):
        pytest.skip(f"{name} backend not installed")


@pytest.fixture
def private_weights(weights_pt, tmp_path):
    """The synthetic weights in a folder of their own, so exports next to them are this test's."""
    path = tmp_path / weights_pt.name
    shutil.copyfile(weights_pt, path)
    return path


@pytest.mark.parametrize("backend", FP32)
def test_fp32_backend_end_to_end_matches_official(weights_pt, backend: str) -> None:
    _require(backend)
    frame = cv2.imread(str(TEST_IMAGE))
    est = DepthEstimator(weights=weights_pt, keep_aspect=True, backend=backend).load()
    assert est.backend_name == backend
    depth = est.predict(frame)
    golden = load_fixture("post_depth_480x640.npy")
    assert depth.dtype == np.float32 and depth.shape == golden.shape
    assert rel_error(depth, golden) <= 1e-4


@pytest.mark.parametrize("backend", FP32)
def test_fp32_backend_network_matches_golden_square(weights_pt, backend: str) -> None:
    _require(backend)
    est = DepthEstimator(weights=weights_pt, backend=backend).load()
    y = est.backend(load_fixture("net_input_1x3x256x256.npy"))
    assert y.shape == (256, 256) and y.dtype == np.float32
    assert rel_error(y, load_fixture("net_output_1x256x256.npy")[0]) <= 1e-4


def test_reference_order_and_folded_bn_match_golden(weights_pt) -> None:
    model = load_network("midas-small", weights_pt)
    reference = build_model(reference=True)
    reference.load_state_dict(model.state_dict())
    fast = static_padding(fold_batchnorm(copy.deepcopy(model)), 192, 256).to(memory_format=torch.channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.from_numpy(load_fixture("net_input_1x3x192x256.npy"))
    golden = load_fixture("net_output_1x192x256.npy")
    with torch.inference_mode():
        assert rel_error(reference(x).numpy(), golden) <= 1e-4
        assert rel_error(fast(x.contiguous(memory_format=torch.channels_last)).numpy(), golden) <= 1e-4
    assert set(model.state_dict()) == set(reference.state_dict())


def test_auto_picks_a_measured_installed_fp32_backend(weights_pt, caplog, monkeypatch) -> None:
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    with caplog.at_level(logging.INFO, logger="livedepth"):
        est = DepthEstimator(weights=weights_pt).load()
    assert est.backend_name in auto_candidates()
    assert f"backend: {est.backend_name} (auto)" in caplog.text
    assert f"auto backend: {est.backend_name}" in caplog.text


def test_unknown_backend_is_a_user_error(weights_pt) -> None:
    with pytest.raises(LivedepthError, match="unknown backend"):
        DepthEstimator(weights=weights_pt, backend="tensorrt").load()


def test_onnx_export_is_cached_by_weights_sha(private_weights, caplog) -> None:
    _require("onnx")
    with caplog.at_level(logging.INFO, logger="livedepth"):
        first = DepthEstimator(weights=private_weights, backend="onnx").load()
    graph = export.graph_version(first.backend.network)
    exported = private_weights.parent / f"midas-small-{first.loaded.weights_sha256}-g{graph}-256x256.onnx"
    assert exported.is_file() and "exported" in caplog.text
    stamp = exported.stat().st_mtime_ns
    frame = synthetic_frames(1)[0]
    depth = first.predict(frame)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="livedepth"):
        second = DepthEstimator(weights=private_weights, backend="onnx").load()
    assert "exported" not in caplog.text
    assert exported.stat().st_mtime_ns == stamp
    assert second._network is None  # a warm export cache does not even build the torch model
    np.testing.assert_array_equal(second.predict(frame), depth)

    state = torch.load(private_weights, weights_only=True)
    key = "scratch.output_conv.4.bias"
    state[key] = state[key] + 0.5
    torch.save(state, private_weights)
    third = DepthEstimator(weights=private_weights, backend="onnx").load()
    assert third.loaded.weights_sha256 != first.loaded.weights_sha256
    assert (private_weights.parent / f"midas-small-{third.loaded.weights_sha256}-g{graph}-256x256.onnx").is_file()
    assert not np.array_equal(third.predict(frame), depth)


def test_a_new_graph_version_never_reuses_a_stale_export(private_weights, caplog, monkeypatch) -> None:
    _require("onnx")
    DepthEstimator(weights=private_weights, backend="onnx").load()
    monkeypatch.setattr(export, "graph_version", lambda network: "changedcode0")  # what a model-code change does
    with caplog.at_level(logging.INFO, logger="livedepth"):
        DepthEstimator(weights=private_weights, backend="onnx").load()
    assert "exported" in caplog.text
    assert len(list(private_weights.parent.glob("midas-small-*-256x256.onnx"))) == 2



@pytest.mark.slow
def test_int8_checks_itself_against_fp32(private_weights, caplog) -> None:
    _require("int8")
    frames = synthetic_frames(2, 120, 160, seed=3)
    with caplog.at_level(logging.INFO, logger="livedepth"):
        est = DepthEstimator(weights=private_weights, size=64, backend="int8", calibration=frames).load()
    error = est.backend.check_error
    assert error is not None and np.isfinite(error) and error > 0
    assert f"relative RMS error {error:.4f}" in caplog.text
    warned = any(r.levelno == logging.WARNING and "int8 relative error" in r.message for r in caplog.records)
    assert warned == (error > INT8_WARN_THRESHOLD)
    quantized = list(private_weights.parent.glob("*-64x64-int8-*.onnx"))
    assert len(quantized) == 1
    depth = est.predict(frames[0])
    assert depth.shape == (120, 160) and np.isfinite(depth).all()
    # Same calibration frames: the quantized model is reused, not rebuilt.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="livedepth"):
        DepthEstimator(weights=private_weights, size=64, backend="int8", calibration=frames).load()
    assert "quantized" not in caplog.text
    assert list(private_weights.parent.glob("*-64x64-int8-*.onnx")) == quantized


@pytest.mark.slow
def test_cli_image_backend_flag(weights_pt, tmp_path) -> None:
    out = tmp_path / "depth.png"
    raw = tmp_path / "depth.npy"
    proc = run_cli("image", str(TEST_IMAGE), str(out), "--keep-aspect", "--backend", "torch", "--raw", str(raw),
                   "--weights", str(weights_pt))
    assert proc.returncode == 0, proc.stderr
    assert "backend: torch" in proc.stderr
    assert rel_error(np.load(raw), load_fixture("post_depth_480x640.npy")) <= 1e-4
    bad = run_cli("image", str(TEST_IMAGE), str(out), "--backend", "nope", "--weights", str(weights_pt))
    assert_one_line_error(bad, "--backend nope: must be one of auto, torch, onnx, openvino, int8, bf16")


def test_openvino_is_imported_without_usage_telemetry() -> None:
    pytest.importorskip("openvino")
    code = (
        "from livedepth.backends.openvino import import_openvino\n"
        "import_openvino().Core()\n"
        "from openvino.tools.ovc import telemetry_utils\n"
        "print(telemetry_utils.tm.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "openvino.tools.ovc.telemetry_stub"


@pytest.mark.slow
def test_convert_int8_calibrates_on_its_input_and_reuses_the_calibrated_model(private_weights, tmp_path) -> None:
    _require("int8")
    from support.clips import make_clip

    src = tmp_path / "in.mp4"
    make_clip(src, frames=12, width=96, height=64, audio=None)
    runs = []
    for name in ("a.mp4", "b.mp4"):
        proc = run_cli("convert", str(src), str(tmp_path / name), "--backend", "int8", "--size", "64",
                       "--weights", str(private_weights), timeout=600)
        assert proc.returncode == 0, proc.stderr
        runs.append(proc.stderr)
    for stderr in runs:
        assert f"int8: calibrating on 8 frames sampled across {src}" in stderr
        assert "check: relative RMS error" in stderr and "on 8 calibration frames" in stderr
    assert "quantized" in runs[0] and "quantized" not in runs[1], "the second run reuses the calibrated model"
    assert len(list(private_weights.parent.glob("*-int8-*.onnx"))) == 1
