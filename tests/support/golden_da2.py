"""Helpers for the Depth Anything V2 fixtures in tests/fixtures/da2 (packed from ../shared/golden_da2).

To stay small, the folder keeps only what cannot be derived, losslessly recompressed:
- ``weights.npz.xz``: the synthetic ternary weights' arrays (same names, order and values as
  ``depth_anything_v2_vits_synthetic_ternary.npz``), in an uncompressed npz, xz-compressed;
- ``goldens.npz.xz``: the two network inputs and the four network outputs, each float32 array
  stored as its four byte planes (``<name>``) and its shape (``<name>::shape``), xz-compressed;
- ``test_image_640x480.png`` and the official ``manifest.json`` (unchanged).

Every golden that a test uses is checked against the manifest's SHA-256 of the original ``.npy``
file, so a decoded or derived array is the official one bit for bit. The preprocessed inputs,
the end-to-end depths and the interpolated position embedding are derived (see the tests).

Repack: ``python tests/golden_da2.py PATH/TO/golden_da2``.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from support.golden import FIXTURES, expand_ternary

DA2 = FIXTURES / "da2"
WEIGHTS_XZ = DA2 / "weights.npz.xz"
GOLDENS_XZ = DA2 / "goldens.npz.xz"
TEST_IMAGE = DA2 / "test_image_640x480.png"
MANIFEST = DA2 / "manifest.json"
#: The goldens that cannot be derived from the test image, the weights or each other.
STORED = (
    "net_input_1x3x518x518",
    "net_output_1x518x518",
    "net_input_1x3x392x518",
    "net_output_1x392x518",
    "pre_output_1x518x686",
    "pre_output_1x252x336",
)
WEIGHTS_NPZ = "depth_anything_v2_vits_synthetic_ternary.npz"


def read_xz_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an xz-compressed npz, in stored order."""
    with np.load(io.BytesIO(lzma.decompress(path.read_bytes())), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def synthetic_state() -> dict[str, torch.Tensor]:
    """The expanded synthetic weights: the official float32 state dict, in official order."""
    return expand_ternary(read_xz_npz(WEIGHTS_XZ))


def npy_sha256(array: np.ndarray) -> str:
    """SHA-256 of the ``.npy`` file ``np.save`` writes for ``array`` (what the manifest records)."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def _walk(node: object) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and value.endswith((".npy", ".npz", ".png")):
                sha = node.get("sha256") if key == "file" else node.get(f"{key}_sha256")
                if sha:
                    yield value.removesuffix(".npy"), sha
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def manifest_sha256() -> dict[str, str]:
    """File name (without ``.npy``) -> SHA-256, for every file the official manifest lists."""
    return dict(_walk(json.loads(MANIFEST.read_text())))


def checked(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` after asserting that it is the official ``name.npy`` bit for bit."""
    assert npy_sha256(array) == manifest_sha256()[name], f"{name} differs from the official file"
    return array


def _shuffled(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array.astype("<f4").view(np.uint8).reshape(-1, 4).T)


def stored_goldens() -> dict[str, np.ndarray]:
    """The stored goldens, decoded and checked against the manifest."""
    arrays = read_xz_npz(GOLDENS_XZ)
    return {
        name: checked(name, np.ascontiguousarray(arrays[name].T).view("<f4").reshape(arrays[f"{name}::shape"]))
        for name in STORED
    }


def _write_xz_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))


def pack(source: Path) -> None:
    """Write tests/fixtures/da2 from the shared folder ``source`` (run by hand, not by tests)."""
    DA2.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.json", TEST_IMAGE.name):
        (DA2 / name).write_bytes((source / name).read_bytes())
    shas = manifest_sha256()
    assert hashlib.sha256((source / WEIGHTS_NPZ).read_bytes()).hexdigest() == shas[WEIGHTS_NPZ]
    with np.load(source / WEIGHTS_NPZ, allow_pickle=False) as npz:
        weights = {key: npz[key] for key in npz.files}
    _write_xz_npz(WEIGHTS_XZ, weights)
    goldens: dict[str, np.ndarray] = {}
    for name in STORED:
        array = checked(name, np.load(source / f"{name}.npy"))
        goldens[name] = _shuffled(array)
        goldens[f"{name}::shape"] = np.array(array.shape)
    _write_xz_npz(GOLDENS_XZ, goldens)
    unpacked = read_xz_npz(WEIGHTS_XZ)
    assert list(unpacked) == list(weights) and all(np.array_equal(unpacked[k], weights[k]) for k in weights)
    stored_goldens()


if __name__ == "__main__":
    pack(Path(sys.argv[1]))
