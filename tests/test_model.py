"""The model reproduces the official MiDaS v2.1 small on the golden fixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from support.golden import FIXTURES, load_fixture, rel_error
from livedepth.model.midas import build_model
from livedepth.model.network import load_network


def test_state_dict_matches_official_schema() -> None:
    schema = json.loads((FIXTURES / "state_dict_schema.json").read_text())["entries"]
    state = build_model().state_dict()
    assert [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()] == [
        (e["key"], e["shape"], e["dtype"]) for e in schema
    ]


@pytest.mark.parametrize("shape", ["256x256", "192x256"])
def test_network_matches_golden(weights_pt, shape: str) -> None:
    model = load_network("midas-small", weights_pt)
    assert not model.training
    x = torch.from_numpy(load_fixture(f"net_input_1x3x{shape}.npy"))
    with torch.inference_mode():
        y = model(x).numpy()
    golden = load_fixture(f"net_output_1x{shape}.npy")
    assert y.shape == golden.shape
    assert rel_error(y, golden) <= 1e-4


def test_unused_residual_unit_never_runs(weights_pt) -> None:
    model = load_network("midas-small", weights_pt)
    x = torch.from_numpy(load_fixture("net_input_1x3x192x256.npy"))
    with torch.inference_mode():
        before = model(x)
        for p in model.scratch.refinenet4.resConfUnit1.parameters():
            p.normal_()
        after = model(x)
    assert torch.equal(before, after)


def test_rejects_sizes_not_multiple_of_32() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model()(torch.zeros(1, 3, 200, 256))


def test_batch_of_two_equals_single_frames(weights_pt) -> None:
    model = load_network("midas-small", weights_pt)
    x = torch.from_numpy(np.concatenate([load_fixture("net_input_1x3x256x256.npy")] * 2))
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (2, 256, 256)
    assert rel_error(y[1].numpy(), load_fixture("net_output_1x256x256.npy")[0]) <= 1e-4
