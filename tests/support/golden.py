"""Helpers for the golden fixtures copied from ../shared/golden."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SYNTHETIC_NPZ = FIXTURES / "midas_v21_small_256_synthetic_ternary.npz"
TEST_IMAGE = FIXTURES / "test_image_640x480.png"


def expand_ternary(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The official float32 state dict (in official order) from the ternary format: each int8
    code array times its ``<key>::scale``, one value per index of the array's axis 0."""
    state: dict[str, torch.Tensor] = {}
    for key, arr in arrays.items():
        if key.endswith("::scale"):
            continue
        if arr.dtype == np.int8:
            scale = arrays[key + "::scale"].astype(np.float32)
            arr = arr.astype(np.float32) * scale.reshape(-1, *(1,) * (arr.ndim - 1))
        state[key] = torch.from_numpy(arr.astype(np.float32))
    return state


def expand_synthetic_weights(npz_path: Path = SYNTHETIC_NPZ) -> dict[str, torch.Tensor]:
    """Expand the ternary codes to the official float32 state dict (in official order)."""
    with np.load(npz_path, allow_pickle=False) as npz:
        return expand_ternary({key: npz[key] for key in npz.files})


def save_synthetic_weights(path: Path) -> Path:
    """Write the expanded synthetic weights as the official file is written: ``torch.save``."""
    torch.save(expand_synthetic_weights(), path)
    return path


def rel_error(y: np.ndarray, golden: np.ndarray) -> float:
    """``max|y - g| / max|g|``, the golden README's metric."""
    return float(np.max(np.abs(y.astype(np.float64) - golden)) / np.max(np.abs(golden)))


def load_fixture(name: str) -> np.ndarray:
    return np.load(FIXTURES / name)
