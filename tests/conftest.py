"""Shared fixtures: synthetic official-layout weights and an isolated weights cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from support.golden import expand_synthetic_weights
from support.golden_da2 import synthetic_state as da2_synthetic_state


def _isolate(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """An empty livedepth cache, no way to reach the internet, and ONNX Runtime as the backend
    (``auto`` would time every backend afresh in each empty cache; its own tests remove this)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("LIVEDEPTH_WEIGHTS", raising=False)
    monkeypatch.setenv("LIVEDEPTH_WEIGHTS_URL", "http://127.0.0.1:9/unreachable.pt")
    monkeypatch.setenv("LIVEDEPTH_BACKEND", "onnx")


@pytest.fixture(scope="session", autouse=True)
def isolated_session(tmp_path_factory: pytest.TempPathFactory):
    """The same isolation for session and module fixtures, which run before a test's own."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate(monkeypatch, tmp_path_factory.mktemp("xdg-cache-session"))
        yield


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty livedepth cache (see :func:`_isolate`)."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    _isolate(monkeypatch, cache)
    return cache / "livedepth"


@pytest.fixture(scope="session")
def synthetic_state() -> dict[str, torch.Tensor]:
    """The expanded synthetic weights, in official key order."""
    return expand_synthetic_weights()


@pytest.fixture(scope="session")
def weights_pt(tmp_path_factory: pytest.TempPathFactory, synthetic_state: dict[str, torch.Tensor]) -> Path:
    """The synthetic weights saved like the official file: a plain ``torch.save``d state dict."""
    path = tmp_path_factory.mktemp("weights") / "midas_v21_small_256.pt"
    torch.save(synthetic_state, path)
    return path


@pytest.fixture(scope="session")
def da2_weights_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic Depth Anything V2 Small weights saved like the official ``.pth``."""
    path = tmp_path_factory.mktemp("da2-weights") / "depth_anything_v2_vits.pth"
    torch.save(da2_synthetic_state(), path)
    return path


@pytest.fixture(scope="session")
def model_weights(weights_pt: Path, da2_weights_pt: Path) -> dict[str, Path]:
    """Each built-in model's synthetic weights, by model name."""
    return {"midas-small": weights_pt, "depth-anything-v2-small": da2_weights_pt}
