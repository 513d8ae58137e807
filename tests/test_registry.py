"""The model seam: the registry, a cheap estimator, a second (toy) model through every path, one-line errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support.cli_helpers import assert_one_line_error, run_cli
from support.clips import decoded_pts, live_clip, make_clip
from support.golden import TEST_IMAGE, load_fixture, rel_error
from torch import nn

import livedepth
from livedepth.app.convert import build_converter
from livedepth.app.estimator import build_estimator
from livedepth.app.image import depth_image
from livedepth.app.live import build_live_run
from livedepth.backends import auto
from livedepth.backends.base import ENV_BACKEND
from livedepth.core.errors import LivedepthError, WeightsError
from livedepth.inference.estimator import DepthEstimator
from livedepth.model import registry
from livedepth.model.registry import ModelSpec, WeightsSource
from livedepth.settings import load_settings

# --- a toy second model: a tiny conv net with its own size rule and its own checkpoint layout ---


class ToyDepth(nn.Module):
    """Two convs around an 8x average pool: inputs must be multiples of 8."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Conv2d(3, 6, 3, padding=1)
        self.decode = nn.Conv2d(6, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"toy input must be multiples of 8, got {tuple(x.shape[-2:])}")
        coarse = F.avg_pool2d(F.relu(self.encode(x)), 8)
        depth = F.interpolate(self.decode(coarse), scale_factor=8, mode="bilinear", align_corners=False)
        return F.softplus(depth).squeeze(1)


def toy_network() -> ToyDepth:
    return ToyDepth().eval()


def toy_input_size(height: int, width: int, size: int, keep_aspect: bool) -> tuple[int, int]:
    if not keep_aspect:
        return size, size
    scale = size / max(height, width)
    return max(8, int(height * scale) // 8 * 8), max(8, int(width * scale) // 8 * 8)


def toy_preprocess(frame_bgr: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    resized = cv2.resize(rgb, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(((resized - 0.5) / 0.25).transpose(2, 0, 1)[None])


def toy_postprocess(depth: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    resized = cv2.resize(depth, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized, dtype=np.float32)


def toy_adapt(state: dict) -> dict:
    """The toy's "official" checkpoint keeps its tensors under ``net.``."""
    return {key.removeprefix("net."): value for key, value in state.items()}


TOY = ModelSpec(
    name="toy",
    build_network=toy_network,
    weights=WeightsSource("toy_depth.pt", "http://127.0.0.1:9/toy_depth.pt", None),
    size_multiple=8,
    default_size=48,
    size_rule="a multiple of 8 (default 48)",
    input_size=toy_input_size,
    preprocess=toy_preprocess,
    postprocess=toy_postprocess,
    adapt_state_dict=toy_adapt,
    parameters="0.0003M",
    license="MIT",
    max_size=512,
)


@pytest.fixture
def toy():
    """The toy model, registered for the test."""
    registry.register(TOY)
    yield TOY
    registry.unregister(TOY.name)


@pytest.fixture
def toy_weights(tmp_path_factory) -> Path:
    """The toy's checkpoint in its own layout, saved by the test."""
    torch.manual_seed(0)
    state = {f"net.{key}": value for key, value in ToyDepth().state_dict().items()}
    path = tmp_path_factory.mktemp("toy") / "toy_depth.pt"
    torch.save(state, path)
    return path


def toy_depth(weights: Path, frame: np.ndarray, size: int = 48) -> np.ndarray:
    """The toy's depth for ``frame`` computed by hand: its network in torch, no backend."""
    network = toy_network()
    network.load_state_dict(toy_adapt(torch.load(weights, weights_only=True)))
    x = torch.from_numpy(toy_preprocess(frame, (size, size)))
    with torch.inference_mode():
        return toy_postprocess(network(x)[0].numpy(), frame.shape[:2])


def toy_settings(tmp_path: Path, extra: str = ""):
    config = tmp_path / "toy.toml"
    config.write_text(f'[model]\nname = "toy"\n{extra}')
    return load_settings(config)


# --- a cheap estimator -------------------------------------------------------------------------

_opened: list[str] | None = None  # file system use while a test records it (an audit hook cannot be removed)
_FILE_EVENTS = {"open", "os.mkdir", "os.rename", "os.remove", "os.listdir", "os.scandir"}


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event in _FILE_EVENTS:
        _opened.append(f"{event} {args[0]}")


sys.addaudithook(_audit)


def test_an_estimator_is_built_without_touching_the_network_or_the_disk(isolated_cache, tmp_path, monkeypatch):
    global _opened
    registry.get("midas-small")  # the model's module is imported (its code read) before we watch
    built: list[str] = []
    real_init = nn.Module.__init__

    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(nn.Module, "__init__", counting_init)
    missing = tmp_path / "absent" / "midas_v21_small_256.pt"
    _opened = []
    try:
        est = DepthEstimator("midas-small", weights=missing, keep_aspect=True, backend="auto")
        cheap = DepthEstimator()  # the default model, weights from the (empty) cache
    finally:
        opened, _opened = _opened, None
    assert opened == [] and built == []
    assert not isolated_cache.exists()
    assert (est.model_name, est.size, cheap.model_name, cheap.size) == ("midas-small", 256, "midas-small", 256)
    with pytest.raises(RuntimeError, match=r"not loaded: call load\(\) first"):
        est.predict(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(RuntimeError, match="not loaded"):
        est.backend_name  # noqa: B018 - the property raises
    with pytest.raises(WeightsError) as err:
        est.load()
    assert str(err.value) == f"weights file not found: {missing} (from --weights)"
    with pytest.raises(RuntimeError, match="not loaded"):  # a failed load leaves it unloaded
        est.predict(np.zeros((48, 64, 3), np.uint8))


def test_load_is_idempotent_and_thread_safe(toy, toy_weights, caplog):
    import logging
    import threading

    est = DepthEstimator("toy", weights=toy_weights, backend="torch")
    with caplog.at_level(logging.INFO, logger="livedepth"):
        threads = [threading.Thread(target=est.load) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert caplog.text.count("backend: torch") == 1
    assert est.load() is est and est.backend_name == "torch"


# --- a second model through image, convert and live, without touching them -----------------------


def test_the_toy_model_runs_through_image(toy, toy_weights, tmp_path):
    settings = toy_settings(tmp_path)
    assert (settings.model.name, settings.model.size) == ("toy", None)
    out, raw = tmp_path / "depth.png", tmp_path / "depth.npy"
    depth_image(settings, TEST_IMAGE, out, raw, toy_weights)
    frame = cv2.imread(str(TEST_IMAGE))
    depth = np.load(raw)
    assert depth.shape == frame.shape[:2] and depth.dtype == np.float32
    assert rel_error(depth, toy_depth(toy_weights, frame)) <= 1e-4  # through the onnx backend (conftest)
    assert cv2.imread(str(out)).shape == frame.shape


def test_the_toy_model_runs_through_convert_keeping_the_timestamps(toy, toy_weights, tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, frames=10, width=80, height=48, audio="aac")
    settings = toy_settings(tmp_path, "size = 32\n")
    estimator = build_estimator(settings, toy_weights)
    assert (estimator.model_name, estimator.size, estimator.input_size(48, 80)) == ("toy", 32, (32, 32))
    result = build_converter(settings, src, out, estimator.predict).run()
    assert result.frames == 10
    assert decoded_pts(out) == decoded_pts(src)


def test_the_toy_model_runs_through_a_live_pipeline(toy, toy_weights, tmp_path):
    clip = live_clip(tmp_path / "live.mp4", frames=20, fps=30)
    settings = toy_settings(tmp_path, f'keep_aspect = true\n[live]\ninput = "{clip}"\ndisplay = false\n'
                                      "max_frames = 6\n")
    run = build_live_run(settings, weights=toy_weights)
    assert run.pipeline.estimator.model_name == "toy"
    assert run.pipeline.estimator.input_size(120, 160) == (32, 48)
    stats = run.run()
    assert stats["frames_processed"] == 6


def test_an_upload_worker_rebuilds_the_same_model_from_model_settings(toy, toy_weights):
    live = DepthEstimator("toy", weights=toy_weights, size=40, backend="torch").load()
    settings = live.model_settings()
    assert settings["model"] == "toy" and settings["size"] == 40
    again = DepthEstimator(**{**settings, "backend": "torch", "eager": True}).load()
    frame = cv2.imread(str(TEST_IMAGE))
    assert rel_error(again.predict(frame), live.predict(frame)) <= 1e-5


def test_auto_is_measured_and_cached_per_model(toy, toy_weights, isolated_cache, monkeypatch):
    if len(auto.auto_candidates()) < 2:
        pytest.skip("auto measures only when two fp32 backends are installed")
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    est = DepthEstimator("toy", weights=toy_weights, threads=1).load()
    assert est.backend_name in auto.auto_candidates()
    (entry,) = json.loads((isolated_cache / f"{auto.AUTO_CACHE}.json").read_text()).values()
    assert entry["backend"] == est.backend_name
    assert entry["combination"]["model"] == "toy" and entry["combination"]["input"] == "48x48"
    frame = cv2.imread(str(TEST_IMAGE))
    assert rel_error(est.predict(frame), toy_depth(toy_weights, frame)) <= 1e-4


# --- one-line errors ---------------------------------------------------------------------------


def test_a_wrong_model_name_is_one_line_listing_the_models(toy, tmp_path):
    with pytest.raises(LivedepthError) as err:
        load_settings(flags={("model", "name"): "nope"})
    assert str(err.value) == "--model nope: unknown model; choose from midas-small, depth-anything-v2-small, toy"
    config = tmp_path / "bad.toml"
    config.write_text('[model]\nname = "midas"\n')
    with pytest.raises(LivedepthError, match=r'\[model\] name = "midas": unknown model; choose from midas-small'):
        load_settings(config)
    with pytest.raises(LivedepthError, match="unknown model 'nope' \\(choose from midas-small, depth-anything-v2-small, toy\\)"):
        DepthEstimator("nope")


def test_a_size_is_checked_against_the_chosen_model(toy, tmp_path):
    with pytest.raises(LivedepthError) as err:
        load_settings(flags={("model", "name"): "toy", ("model", "size"): "20"})
    assert str(err.value) == "--size 20: must be a multiple of 8 from 8 to 512 for toy"
    assert load_settings(flags={("model", "name"): "toy", ("model", "size"): "24"}).model.size == 24
    with pytest.raises(LivedepthError, match="--size 24: must be a multiple of 32 from 32 to 2048 for midas-small"):
        load_settings(flags={("model", "size"): "24"})
    with pytest.raises(LivedepthError, match=r"\[model\] size = 20: must be a multiple of 8 .* for toy"):
        toy_settings(tmp_path, "size = 20\n")
    with pytest.raises(LivedepthError, match="size 20: must be a multiple of 8"):
        DepthEstimator("toy", size=20)


def test_a_preset_size_belongs_to_the_model_it_was_written_for(toy, tmp_path):
    assert load_settings("rpi").model.size == 192  # midas-small, as the preset says
    other = load_settings("rpi", flags={("model", "name"): "toy"})
    assert other.model.size is None and other.model.keep_aspect is True  # the toy's default size
    assert DepthEstimator("toy", size=other.model.size).size == 48
    chosen = load_settings("rpi", flags={("model", "name"): "toy", ("model", "size"): "64"})
    assert chosen.model.size == 64
    assert toy_settings(tmp_path, "size = 16\n").model.size == 16  # a config naming its model keeps its size


def test_the_other_models_checkpoint_is_one_line(toy, toy_weights, weights_pt):
    with pytest.raises(WeightsError) as err:
        DepthEstimator("toy", weights=weights_pt).load()
    message = str(err.value)
    assert message.startswith(f"weights {weights_pt} do not fit toy: none of its ") and "\n" not in message
    with pytest.raises(WeightsError, match=f"weights {toy_weights} do not fit midas-small: none of its 4 keys"):
        DepthEstimator(weights=toy_weights).load()
    with pytest.raises(WeightsError, match="do not fit toy: missing key decode.bias$"):
        state = torch.load(toy_weights, weights_only=True)
        del state["net.decode.bias"]
        broken = toy_weights.with_name("broken.pt")
        torch.save(state, broken)
        livedepth.load_network("toy", broken)


@pytest.mark.slow
def test_cli_wrong_model_and_the_models_list(tmp_path):
    bad = run_cli("image", str(TEST_IMAGE), str(tmp_path / "o.png"), "--model", "nope")
    assert_one_line_error(bad, "--model nope: unknown model; choose from midas-small")
    listing = run_cli("models")
    assert listing.returncode == 0, listing.stderr
    assert "midas-small (default)" in listing.stdout and "a multiple of 32" in listing.stdout
    assert "parameters: 21M, licence: MIT" in listing.stdout
    assert "midas_v21_small_256.pt from https://github.com/isl-org/MiDaS/releases/download/v2_1/" in listing.stdout
    assert "depth-anything-v2-small" in listing.stdout and "a multiple of 14 (default 518)" in listing.stdout
    assert "parameters: 25M, licence: Apache-2.0" in listing.stdout
    assert "depth_anything_v2_vits.pth from https://huggingface.co/depth-anything/" in listing.stdout


@pytest.mark.slow
def test_cli_weights_per_model(isolated_cache, weights_pt):
    path = run_cli("weights", "path", "--model", "midas-small")
    assert path.returncode == 0 and str(isolated_cache / "midas_v21_small_256.pt") in path.stdout
    verified = run_cli("weights", "verify", "--model", "midas-small", "--weights", str(weights_pt))
    assert verified.returncode == 0, verified.stderr
    assert f"{weights_pt} ok sha256=" in verified.stdout and "(midas-small, from --weights)" in verified.stdout
    offline = run_cli("weights", "verify", "--model", "midas-small")
    assert_one_line_error(offline, f"no weights in the cache: put midas_v21_small_256.pt in {isolated_cache}")


# --- the public API ----------------------------------------------------------------------------


def test_public_api_load_network_and_create_estimator(toy, toy_weights, weights_pt):
    network = livedepth.load_network("midas-small", weights_pt)
    assert not network.training and next(network.parameters()).dtype == torch.float32
    with torch.inference_mode():
        y = network(torch.from_numpy(load_fixture("net_input_1x3x256x256.npy"))).numpy()
    assert rel_error(y, load_fixture("net_output_1x256x256.npy")) <= 1e-4

    estimator = livedepth.create_estimator("midas-small", weights_pt, keep_aspect=True, backend="torch")
    frame = cv2.imread(str(TEST_IMAGE))
    depth = estimator.predict(frame)
    assert estimator.backend_name == "torch" and depth.dtype == np.float32
    assert rel_error(depth, load_fixture("post_depth_480x640.npy")) <= 1e-4

    toy_estimator = livedepth.create_estimator("toy", toy_weights, size=64)
    assert toy_estimator.backend_name == "onnx"  # $LIVEDEPTH_BACKEND in the tests (conftest)
    assert toy_estimator.predict(frame).shape == (480, 640)


def test_import_livedepth_stays_light():
    code = "import sys, livedepth; print(sorted(m for m in ('torch', 'cv2', 'timm', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_register_replaces_and_unregister_restores_a_builtin():
    original = registry.get("midas-small")
    registry.register(dataclasses.replace(original, default_size=128))
    try:
        assert registry.get("midas-small").default_size == 128
        assert registry.model_names().count("midas-small") == 1
    finally:
        registry.unregister("midas-small")
    assert registry.get("midas-small").default_size == 256
