"""Depth Anything V2 Small reproduces the official code on the golden fixtures (tests/fixtures/da2).

rel = max|y - g| / max|g| <= 1e-4 for every case, as ../shared/golden_da2/README.md asks.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from support.golden import expand_synthetic_weights, rel_error
from support.golden_da2 import TEST_IMAGE, checked, stored_goldens, synthetic_state
from livedepth.core.errors import LivedepthError, WeightsError
from livedepth.inference.estimator import DepthEstimator
from livedepth.model import depth_anything as da
from livedepth.model import registry
from livedepth.model.registry import WeightsSource
from livedepth.model.weights import read_state_dict

pytestmark = pytest.mark.slow  # full-size ViT forwards: see the README's fast lane

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def goldens() -> dict[str, np.ndarray]:
    return stored_goldens()


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    return synthetic_state()


@pytest.fixture(scope="module")
def official_pt(tmp_path_factory: pytest.TempPathFactory, official_state) -> Path:
    """The synthetic weights saved as the official file is: a plain ``torch.save``d state dict."""
    path = tmp_path_factory.mktemp("da2") / "depth_anything_v2_vits.pth"
    torch.save(official_state, path)
    return path


@pytest.fixture(scope="module")
def network(official_pt: Path) -> da.DepthAnythingV2Small:
    """Loaded through the project's reader (``torch.load(weights_only=True)``), adapted, strict."""
    net = da.build_network()
    da.load_official_state(net, read_state_dict(official_pt), str(official_pt))
    return net


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.imread(str(TEST_IMAGE))


def forward(network: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return network(torch.from_numpy(x)).numpy()


def report(case: str, rel: float) -> None:
    print(f"\n{case}: rel {rel:.2e}")


def test_state_dict_is_the_official_layout_without_mask_token(official_state) -> None:
    state = da.build_network().state_dict()
    official = da.adapt_state_dict(official_state)
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, tuple(v.shape)) for k, v in official.items()]
    assert set(official_state) - set(official) == {"pretrained.mask_token"}
    assert all(v.dtype == torch.float32 for v in state.values())


def test_strict_load_of_an_official_layout_pt(network, official_state) -> None:
    loaded = network.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in da.adapt_state_dict(official_state).items())
    assert not network.training
    assert da.parameter_count(network) == 24_784_705  # "25M"


@pytest.mark.parametrize("shape", ["518x518", "392x518"])
def test_network_matches_golden(network, goldens, shape: str) -> None:
    """518x518 keeps the 37x37 position grid; 392x518 (28x37) resamples both axes."""
    y = forward(network, goldens[f"net_input_1x3x{shape}"])
    golden = goldens[f"net_output_1x{shape}"]
    assert y.shape == golden.shape
    rel = rel_error(y, golden)
    report(f"net {shape}", rel)
    assert rel <= TOLERANCE


@pytest.mark.parametrize("form", ["runtime", "export"])
def test_fast_forms_are_exact_rewrites(network, goldens, form: str) -> None:
    """What the fast backends run (LayerScale and the score scale folded, 1x1 convs before the
    resizes; for the exports also the GELU doubled into a halved ``fc2``) gives the official
    network's output up to float rounding."""
    x = goldens["net_input_1x3x392x518"]
    model = copy.deepcopy(network)
    fast = da.runtime_form(model) if form == "runtime" else da.export_form(model, *x.shape[-2:])
    block = fast.pretrained.blocks[0]
    assert isinstance(block.attn, da.PrescaledAttention)
    assert isinstance(block.mlp.act, da.DoubledGelu) == (form == "export")
    rel = rel_error(forward(fast, x), forward(network, x))
    report(f"{form} form vs eager, 392x518", rel)
    assert rel <= 1e-5
    assert rel_error(forward(fast, x), goldens["net_output_1x392x518"]) <= TOLERANCE


@pytest.mark.parametrize(("size", "shape"), [(518, "518x686"), (252, "252x336")])
def test_official_preprocessing_and_network(network, goldens, frame, size: int, shape: str) -> None:
    x = da.preprocess(frame, da.input_size(*frame.shape[:2], size, keep_aspect=True))
    checked(f"pre_input_1x3x{shape}", x)  # the official image2tensor, bit for bit
    rel = rel_error(forward(network, x), goldens[f"pre_output_1x{shape}"])
    report(f"pre {shape}", rel)
    assert rel <= TOLERANCE


def test_position_embedding_for_an_18x24_grid(network, official_state) -> None:
    """Against the official resampling (scale factor (g + 0.1)/37, bicubic a=-0.75, no antialias)."""
    pos = official_state["pretrained.pos_embed"]
    grid = pos[:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2)
    resampled = F.interpolate(grid, scale_factor=(18.1 / 37, 24.1 / 37), mode="bicubic", antialias=False)
    golden = torch.cat([pos[:, :1], resampled.permute(0, 2, 3, 1).reshape(1, 18 * 24, -1)], dim=1).numpy()
    checked("pos_embed_interp_1x433x384_grid18x24", golden)
    with torch.inference_mode():
        ours = network.pretrained.position_embedding(18, 24).numpy()
    rel = rel_error(ours, golden)
    report("pos_embed 18x24", rel)
    assert rel <= TOLERANCE
    assert np.array_equal(ours[0, 0], golden[0, 0])  # the class position is never resampled


@pytest.mark.parametrize(("size", "name"), [(518, "post_depth_480x640"), (252, "post_depth_480x640_input252")])
def test_end_to_end_depth_at_the_frame_size(network, goldens, frame, size: int, name: str) -> None:
    """From the PNG: official sizing, preprocessing, network and ``infer_image``'s upsampling."""
    pre_output = goldens[f"pre_output_1x{'518x686' if size == 518 else '252x336'}"]
    golden = F.interpolate(torch.from_numpy(pre_output)[:, None], (480, 640), mode="bilinear", align_corners=True)
    golden = checked(name, golden[0, 0].numpy())
    x = da.preprocess(frame, da.input_size(*frame.shape[:2], size, keep_aspect=True))
    depth = da.postprocess(forward(network, x)[0], frame.shape[:2])
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    rel = rel_error(depth, golden)
    report(f"post_depth 480x640 at {size}", rel)
    assert rel <= TOLERANCE


def test_postprocess_is_align_corners_bilinear() -> None:
    depth = np.random.default_rng(0).random((18, 24), dtype=np.float32)
    up = da.postprocess(depth, (35, 47))
    assert up.dtype == np.float32
    # align_corners=True puts the corners and every (n-1)/(N-1) sample exactly on source pixels
    assert up[0, 0] == depth[0, 0] and up[-1, -1] == depth[-1, -1] and up[34, 46] == depth[17, 23]
    assert np.allclose(up[::2, ::2], depth, atol=1e-6)


@pytest.mark.parametrize(
    ("frame_hw", "size", "expected"),
    [
        ((480, 640), 518, (518, 686)),  # 690.67 rounds to 686 (ceil would give 700)
        ((480, 640), 308, (308, 406)),
        ((480, 640), 252, (252, 336)),
        ((640, 480), 518, (686, 518)),
        ((480, 854), 518, (518, 924)),  # 16:9: 921.6 rounds to 924 (floor would give 910)
        ((720, 1280), 518, (518, 924)),
        ((1080, 1920), 518, (518, 924)),
        ((1080, 1920), 308, (308, 546)),
        ((720, 1280), 252, (252, 448)),
        ((500, 500), 252, (252, 252)),
        ((100, 1000), 14, (14, 140)),
    ],
)
def test_keep_aspect_sizing_is_official(frame_hw, size: int, expected) -> None:
    assert da.input_size(*frame_hw, size, keep_aspect=True) == expected


def test_multiples_round_half_to_even_with_a_ceil_fallback() -> None:
    assert da._multiple_at_least(21.0, 14) == 28  # 1.5 -> 2
    assert da._multiple_at_least(35.0, 14) == 28  # 2.5 -> 2 (numpy rounds half to even)
    assert da._multiple_at_least(20.0, 28) == 28  # rounds to 14, below the minimum: ceil


def test_square_mode_and_size_rule() -> None:
    assert da.input_size(480, 640, 252, keep_aspect=False) == (252, 252)
    for bad in (256, 0, -14):
        with pytest.raises(LivedepthError, match="multiple of 14"):
            da.input_size(480, 640, bad)


def test_rejects_inputs_not_multiple_of_14() -> None:
    with pytest.raises(ValueError, match="multiples of 14"):
        da.build_network()(torch.zeros(1, 3, 200, 252))


def test_midas_checkpoint_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "midas_v21_small_256.pt"
    torch.save(expand_synthetic_weights(), path)
    with pytest.raises(WeightsError) as caught:
        da.load_official_state(da.build_network(), read_state_dict(path), str(path))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path} is not a depth-anything-v2-small checkpoint: ")
    assert "missing keys (depth_head." in message and "unexpected keys (pretrained.layer1" in message


def test_misshapen_checkpoint_is_one_line_error(official_state) -> None:
    state = dict(official_state)
    state["pretrained.pos_embed"] = state["pretrained.pos_embed"][:, :257]
    with pytest.raises(WeightsError, match=r"pretrained.pos_embed has shape \(1, 257, 384\), expected \(1, 1370, 384\)"):
        da.load_official_state(da.build_network(), state)


def test_checkpoint_without_mask_token_loads(official_state) -> None:
    state = {k: v for k, v in official_state.items() if k != "pretrained.mask_token"}
    da.load_official_state(da.build_network(), state)


def test_unused_residual_unit_never_runs_and_batches_match(network) -> None:
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 3, 98, 126), dtype=np.float32))
    with torch.inference_mode():
        before = network(x)
        single = network(x[1:])
    spare = da.build_network()
    spare.load_state_dict(network.state_dict())
    with torch.inference_mode():
        for p in spare.depth_head.scratch.refinenet4.resConfUnit1.parameters():
            p.normal_()
        after = spare(x)
    assert torch.equal(before, after)
    assert before.shape == (2, 98, 126) and float(before.min()) >= 0
    assert torch.allclose(before[1:], single, rtol=0, atol=1e-5 * float(single.abs().max()))


def test_the_registry_entry() -> None:
    spec = registry.get("depth-anything-v2-small")
    assert spec is da.SPEC and spec.name in registry.model_names()
    assert spec.license == "Apache-2.0"
    assert spec.weights == WeightsSource(
        filename="depth_anything_v2_vits.pth",
        url="https://huggingface.co/depth-anything/Depth-Anything-V2-Small/resolve/main/depth_anything_v2_vits.pth",
        sha256="715fade13be8f229f8a70cc02066f656f2423a59effd0579197bbf57860e1378",
        size_bytes=99_218_434,
    )
    assert (spec.size_multiple, spec.default_size, spec.parameters) == (14, 518, "25M")
    assert spec.size_problem(252) is None and spec.size_problem(256) is not None
    assert spec.input_size(480, 640, 518, True) == (518, 686)
    assert (spec.runtime_form, spec.export_form) == (da.runtime_form, da.export_form)  # exact rewrites
    net = spec.build_network()
    assert isinstance(net, torch.nn.Module) and not net.training
    assert f"{round(da.parameter_count(net) / 1e6)}M" == spec.parameters


def test_the_registry_imports_no_timm() -> None:
    """``livedepth models`` reads both entries without importing timm (it takes seconds)."""
    code = ("import sys; from livedepth.model import registry; specs = registry.specs(); "
            "assert [s.name for s in specs] == ['midas-small', 'depth-anything-v2-small']; "
            "assert 'timm' not in sys.modules, 'timm imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_backends_match_goldens_at_each_size(official_pt, goldens, frame, backend: str) -> None:
    """Each backend builds one graph per input size (the resampled position embedding and the
    resize targets are constants in it), and each stays faithful."""
    if backend != "torch":
        pytest.importorskip({"onnx": "onnxruntime", "openvino": "openvino"}[backend])
    estimator = DepthEstimator(da.NAME, weights=official_pt, size=252, keep_aspect=True, backend=backend).load()
    assert estimator.backend_name == backend
    rel = rel_error(estimator.backend(goldens["net_input_1x3x392x518"]), goldens["net_output_1x392x518"][0])
    report(f"{backend} net 392x518", rel)
    assert rel <= TOLERANCE
    pre_output = goldens["pre_output_1x252x336"]
    golden = F.interpolate(torch.from_numpy(pre_output)[:, None], (480, 640), mode="bilinear", align_corners=True)
    rel = rel_error(estimator.predict(frame), golden[0, 0].numpy())
    report(f"{backend} post_depth 480x640 at 252", rel)
    assert rel <= TOLERANCE
    if backend != "torch":  # one cached export per size, beside the weights
        exports = {path.name.rsplit("-", 1)[1] for path in official_pt.parent.glob(f"{da.NAME}-*.onnx")}
        assert {"392x518.onnx", "252x336.onnx"} <= exports
