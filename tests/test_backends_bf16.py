"""The bf16 backend: an explicit choice only where the CPU has bf16 arithmetic, checked against fp32."""

from __future__ import annotations

import logging
import shutil

import cv2
import numpy as np
import pytest
from support.cli_helpers import assert_one_line_error, run_cli
from support.golden import TEST_IMAGE, load_fixture, rel_error

from livedepth.backends import system
from livedepth.backends.base import ENV_BACKEND, is_available, require
from livedepth.backends.bf16 import BF16_CHECK_FRAMES
from livedepth.core.errors import LivedepthError
from livedepth.inference.estimator import DepthEstimator

NO_BF16 = "this CPU has no bf16 arithmetic (avx512_bf16, amx_bf16 or Arm bf16); use int8 or an fp32 backend"
needs_a_cpu_without_bf16 = pytest.mark.skipif(system.cpu_has_bf16(), reason="this CPU has bf16 arithmetic")


@pytest.mark.slow
@needs_a_cpu_without_bf16
def test_bf16_on_a_cpu_without_it_is_a_one_line_error(weights_pt, tmp_path, monkeypatch) -> None:
    """Through the real CLI, from ``--backend`` and from the environment; nothing is written.
    The check comes before the weights: a missing file does not hide it."""
    assert not is_available("bf16")
    with pytest.raises(LivedepthError, match="no bf16 arithmetic"):
        require("bf16")
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    with pytest.raises(LivedepthError, match="no bf16 arithmetic"):
        DepthEstimator(weights=tmp_path / "missing.pt", backend="bf16").load()
    out = tmp_path / "depth.png"
    proc = run_cli("image", str(TEST_IMAGE), str(out), "--backend", "bf16", "--weights", str(weights_pt))
    assert_one_line_error(proc, f"backend 'bf16': {NO_BF16}")
    proc = run_cli("image", str(TEST_IMAGE), str(out), "--weights", str(weights_pt), env={ENV_BACKEND: "bf16"})
    assert_one_line_error(proc, f"backend 'bf16': {NO_BF16}")
    assert not out.exists()


@needs_a_cpu_without_bf16
def test_bf16_working_path_on_a_stand_in(weights_pt, tmp_path, monkeypatch, caplog) -> None:
    """A stand-in for a bf16 CPU: only the CPU-capability check is told yes; OpenVINO really
    compiles with ``INFERENCE_PRECISION_HINT=bf16`` (spied on, not replaced), which a CPU without
    bf16 runs in f32 (OpenVINO's documented fallback). So here the output must match fp32
    OpenVINO and the goldens, and the start-up check must log an error of about zero; on a real
    bf16 CPU it would be about 1e-2."""
    if not is_available("openvino"):
        pytest.skip("openvino not installed")
    import openvino

    weights = tmp_path / weights_pt.name  # its exports are this test's
    shutil.copyfile(weights_pt, weights)
    monkeypatch.setattr(system, "cpu_has_bf16", lambda: True)
    hints: list[object] = []
    compile_model = openvino.Core.compile_model

    def spied(self, model, device_name=None, config=None, **kwargs):
        hints.append((config or {}).get("INFERENCE_PRECISION_HINT"))
        return compile_model(self, model, device_name, config, **kwargs)

    monkeypatch.setattr(openvino.Core, "compile_model", spied)
    with caplog.at_level(logging.INFO, logger="livedepth"):
        est = DepthEstimator(weights=weights, backend="bf16").load()
    assert est.backend_name == "bf16"
    assert sorted(hints) == ["bf16", "f32"]  # the bf16 model, and fp32 for the start-up check
    error = est.backend.check_error
    assert error is not None and 0 <= error < 1e-5
    assert f"bf16 (openvino) check: relative RMS error {error:.4f} against fp32 on {BF16_CHECK_FRAMES} frames" \
        in caplog.text
    assert "backend: bf16, run by openvino" in caplog.text

    y = est.backend(load_fixture("net_input_1x3x256x256.npy"))
    assert rel_error(y, load_fixture("net_output_1x256x256.npy")[0]) <= 1e-4
    fp32 = DepthEstimator(weights=weights, backend="openvino").load()
    frame = cv2.imread(str(TEST_IMAGE))
    depth, reference = est.predict(frame), fp32.predict(frame)
    assert depth.shape == reference.shape == frame.shape[:2] and np.isfinite(depth).all()
    assert rel_error(depth, reference) <= 1e-4
