"""Typed settings: presets, files and flags merged once; every bad value is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli_helpers import assert_one_line_error, run_cli

from livedepth.core.errors import LivedepthError
from livedepth.settings import load_settings, preset_names

TEST_IMAGE = Path(__file__).parent / "fixtures" / "test_image_640x480.png"


def test_presets_ship_with_the_package_and_are_valid():
    assert {"desktop", "convert", "rpi"} <= set(preset_names())
    rpi = load_settings("rpi")
    assert (rpi.model.size, rpi.model.keep_aspect, rpi.model.threads) == (192, True, 4)
    assert rpi.live.display is False and rpi.live.max_fps == 5.0 and rpi.web.jpeg_quality == 60
    assert load_settings("convert").render.normalize == "stable"


def test_flags_override_the_preset_which_overrides_the_defaults():
    settings = load_settings("rpi", flags={("model", "size"): "256", ("live", "max_fps"): "0"},
                             defaults={("render", "normalize"): "stable", ("model", "size"): 128})
    assert settings.model.size == 256 and settings.live.max_fps == 0.0
    assert settings.render.normalize == "stable" and settings.model.keep_aspect is True  # preset kept
    assert settings.source == "preset rpi"


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[model]\nsize = 200\n", "[model] size = 200: must be a multiple of 32 from 32 to 2048"),
        ('[model]\nsize = "big"\n', '[model] size = "big": expected a whole number'),
        ("[model]\nsize = 2.5\n", "[model] size = 2.5: expected a whole number"),
        ('[live]\ndisplay = "false"\n', '[live] display = "false": expected true or false'),
        ("[live]\nrealtime = 1\n", "[live] realtime = 1: expected true or false"),
        ("[web]\njpeg_quality = 0\n", "[web] jpeg_quality = 0: must be from 1 to 100"),
        ("[web]\nport = 70000\n", "[web] port = 70000: must be from 0 to 65535"),
        ("[web]\nupload_idle_s = 0\n", "[web] upload_idle_s = 0: must be greater than 0"),
        ('[web]\nuploads = "no"\n', '[web] uploads = "no": expected true or false'),
        ("[live]\nmax_fps = -1\n", "[live] max_fps = -1: must be at least 0"),
        ("[render]\nalpha = 1.5\n", "[render] alpha = 1.5: must be from 0 to 1"),
        ('[render]\nlayout = "tiles"\n', '[render] layout = "tiles": must be one of depth, side, overlay, blur'),
        ("[render]\nrange = [5, 1]\n", "[render] range = [5, 1]: needs LO < HI"),
        ('[model]\nbackend = "tensorrt"\n', "must be one of auto, torch, onnx, openvino, int8"),
        ("[convert]\ncrf = 52\n", "[convert] crf = 52: must be from 0 to 51"),
        ("[model]\nsise = 256\n", "unknown key [model] sise (did you mean [model] size?)"),
        ("[live]\nthreads = 2\n", "unknown key [live] threads (did you mean [model] threads?)"),
        ("[modle]\nsize = 256\n", "unknown key [modle] (did you mean [model]?)"),
        ("[model]\nsize = \n", "is not valid TOML"),
    ],
)
def test_bad_config_values_are_one_line_errors(tmp_path, toml, message):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(LivedepthError) as info:
        load_settings(config)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(config) in str(info.value)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--size", "200"], "--size 200: must be a multiple of 32"),
        (["--size", "big"], "--size big: expected a whole number"),
        (["--threads", "-1"], "--threads -1: must be at least 0"),
        (["--alpha", "x"], "--alpha x: expected a number"),
        (["--range", "1"], "--range 1: expected two numbers, LO,HI"),
        (["--device", "tpu"], "--device tpu: must be one of auto, cpu, cuda, mps"),
        (["--backend", "tensorrt"], "--backend tensorrt: must be one of auto"),
        (["--config", "nosuchpreset"], "config not found: nosuchpreset"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, flags, message):
    assert_one_line_error(run_cli("image", str(TEST_IMAGE), str(tmp_path / "o.png"), *flags), message)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_preset_value_stops_the_cli_before_the_model_loads(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[model]\nsize = 200\n")
    proc = run_cli("image", str(TEST_IMAGE), str(tmp_path / "o.png"), "--config", str(config))
    assert_one_line_error(proc, f"config {config}: [model] size = 200: must be a multiple of 32")


def test_a_flag_overrides_a_bad_free_choice_of_the_preset(tmp_path, weights_pt):
    config = tmp_path / "side.toml"
    config.write_text('[render]\nlayout = "side"\n[model]\nsize = 64\n')
    out = tmp_path / "o.png"
    proc = run_cli("image", str(TEST_IMAGE), str(out), "--config", str(config), "--layout", "depth",
                   "--weights", str(weights_pt))
    assert proc.returncode == 0, proc.stderr
    import cv2

    assert cv2.imread(str(out)).shape == (480, 640, 3)  # depth layout (the flag), not side (the file)
