"""Typed settings: built-in defaults, then a TOML preset or file, then command-line flags.

Every setting is a field of a section dataclass (``[model]``, ``[render]``, ...) that names
its flag, its help and its check. :func:`load_settings` merges the three layers and validates
every value once; a bad value, a wrong type or an unknown key is a one-line
:class:`~livedepth.core.errors.LivedepthError` naming the key or flag, the value and what is allowed.
The presets live in ``configs/`` and ship in the wheel as ``livedepth.configs``.
"""

from __future__ import annotations

import difflib
import logging
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any

from livedepth.core.errors import LivedepthError
from livedepth.core.vocab import ANAGLYPH_MODES, AUDIO_CHOICES, BACKEND_NAMES, DEVICES, LAYOUTS, NORMALIZE_MODES, X264_PRESETS, camera_spec_problem
from livedepth.model import registry
from livedepth.render.colorize import colormap_names

log = logging.getLogger(__name__)

Check = Callable[[Any], str | None]  # returns what is wrong, or None


def setting(default: Any, flag: str | None = None, help: str = "", *, check: Check | None = None,
            choices: tuple[str, ...] | None = None, metavar: str | None = None,
            booleans: tuple[str, str] | None = None) -> Any:
    """A settings field: its default, its flag (``--no-x`` for a flag that sets a bool to false).

    ``booleans`` are the values TOML ``true`` and ``false`` stand for, for a setting that once was a bool.
    """
    return field(default=default, metadata={"flag": flag, "help": help, "check": check, "choices": choices,
                                            "metavar": metavar, "booleans": booleans})


def between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"must be from {low:g} to {high:g}"


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be at least {low:g}"


def above(low: float) -> Check:
    return lambda v: None if v > low else f"must be greater than {low:g}"


def _colormap(name: str) -> str | None:
    names = colormap_names()
    return None if name in names else f"unknown colormap; choose from {', '.join(names)}"


def _value_range(value: tuple[float, float]) -> str | None:
    return None if value[1] > value[0] else "needs LO < HI"


def _model_name(name: str) -> str | None:
    names = registry.model_names()
    return None if name in names else f"unknown model; choose from {', '.join(names)}"


def _sha256(value: str) -> str | None:
    ok = len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)
    return None if ok else "must be 64 hexadecimal digits"


@dataclass(frozen=True)
class ModelSettings:
    name: str = setting(registry.DEFAULT_MODEL, "--model", "depth model (`livedepth models` lists them)",
                        check=_model_name, metavar="NAME")
    # None: the model's default size; a size is checked against the model's rule (load_settings)
    size: int | None = setting(None, "--size", "network input size (default and rule: the model's, see "
                               "`livedepth models`)", check=at_least(1), metavar="N")
    keep_aspect: bool = setting(False, "--keep-aspect", "the model's official keep-aspect input sizing")
    backend: str = setting("auto", "--backend", "inference backend (auto: the fastest installed faithful fp32 one;"
                           " int8 and bf16 are opt-in)", choices=BACKEND_NAMES)
    device: str = setting("auto", "--device", "auto, cpu, cuda or mps (cuda and mps run torch when present)",
                          choices=DEVICES)
    threads: int = setting(0, "--threads", "inference threads (0: all cores)", check=at_least(0), metavar="N")


@dataclass(frozen=True)
class WeightsSettings:
    path: Path | None = setting(None, "--weights", "the model's checkpoint (midas_v21_small_256.pt for "
                                "midas-small)", metavar="PATH")
    sha256: str | None = setting(None, check=_sha256)
    url: str | None = setting(None)


@dataclass(frozen=True)
class RenderSettings:
    layout: str = setting("depth", "--layout", "depth, side, overlay, blur; 3D: sbs, half-sbs, tab, half-tab, "
                          "anaglyph, rgbd", choices=LAYOUTS)
    colormap: str = setting("inferno", "--colormap", "OpenCV colormap name (default inferno)", check=_colormap)
    normalize: str = setting("frame", "--normalize", "frame, stable or fixed (how depth maps to colours)",
                             choices=NORMALIZE_MODES)
    range: tuple[float, float] | None = setting(None, "--range", "depth bounds for --normalize fixed",
                                                check=_value_range, metavar="LO,HI")
    invert: bool = setting(False, "--invert", "far is bright")
    alpha: float = setting(0.5, "--alpha", "overlay opacity of the depth", check=between(0, 1), metavar="A")
    temporal: str = setting("on", "--temporal", "filter video depth over time where it wobbles (flow-guided, "
                            "causal; never for photos); off: the model's own output", choices=("on", "off"))


@dataclass(frozen=True)
class StereoSettings:
    divergence: float = setting(2.0, "--divergence", "3D layouts: how much more the nearest point shifts between "
                                "the eyes than the farthest, in %% of the width", check=between(0, 10), metavar="PCT")
    convergence: float = setting(0.5, "--convergence", "3D layouts: the normalised depth on the screen plane "
                                 "(0 farthest, 1 nearest)", check=between(0, 1), metavar="C")
    anaglyph: str = setting("dubois", "--anaglyph", "anaglyph layout: dubois, color or gray", choices=ANAGLYPH_MODES)
    swap_eyes: bool = setting(False, "--swap-eyes", "3D layouts: exchange the left and right views (cross-eyed)")
    size: int = setting(0, "--stereo-size", "3D layouts: solve the warp at this width and upsample it (0: the "
                        "frame's width)", check=at_least(0), metavar="N")


@dataclass(frozen=True)
class PointCloudSettings:
    fov: float = setting(60.0, "--fov", "point clouds: the horizontal field of view in degrees",
                         check=between(1, 179), metavar="DEG")
    depth_ratio: float = setting(10.0, "--depth-ratio", "point clouds: the farthest point's distance over the "
                                 "nearest's", check=above(1), metavar="R")


@dataclass(frozen=True)
class LiveSettings:
    # A string once loaded ("0", "picam", "picam:1"); TOML may give an index as an int (camera = 0).
    camera: str | int = setting("0", "--camera", "camera (when no --input is given): an index N, or picam / "
                                "picam:N for a Raspberry Pi Camera Module through picamera2",
                                check=camera_spec_problem, metavar="N|picam[:N]")
    input: str | None = setting(None, "--input", "video file, or an http(s):// or rtsp:// stream",
                                metavar="PATH_OR_URL")
    realtime: bool = setting(False, "--realtime", "play a file at its native frame rate")
    reconnect_timeout: float = setting(30.0, "--reconnect-timeout", "give up on a dropped stream after S s",
                                       check=above(0), metavar="S")
    display: bool = setting(True, "--no-display", "no window (record, serve or measure only)")
    snapshot_dir: Path = setting(Path("."), "--snapshot-dir", "where the s key saves PNGs (and p, PLYs)",
                                 metavar="DIR")
    max_fps: float = setting(0.0, "--max-fps", "process at most F frames per second (0: no cap)",
                             check=at_least(0), metavar="F")
    max_frames: int | None = setting(None, "--max-frames", "stop after N processed frames", check=at_least(1),
                                     metavar="N")
    record: Path | None = setting(None, "--record", "also write the shown frames as H.264 mp4", metavar="OUT.mp4")
    stats: Path | None = setting(None, "--stats", "write run statistics as JSON at exit", metavar="STATS.json")


@dataclass(frozen=True)
class WebSettings:
    serve: str | None = setting(None, "--serve", "also serve the web page (stream, stats, photo upload)",
                                metavar="[HOST:]PORT")
    host: str = setting("127.0.0.1", "--host", "address to listen on (any but loopback needs --token)")
    port: int = setting(8080, "--port", "port", check=between(0, 65535))
    token: str | None = setting(None, "--token", "secret every request must carry (?token=T); "
                                "default $LIVEDEPTH_TOKEN")
    no_auth: bool = setting(False, "--no-auth", "serve beyond 127.0.0.1 without a token")
    max_clients: int = setting(8, "--max-clients", "concurrent stream viewers", check=at_least(1), metavar="N")
    jpeg_quality: int = setting(80, "--jpeg-quality", "stream JPEG quality", check=between(1, 100), metavar="Q")
    stream_fps: float = setting(0.0, check=at_least(0))
    max_upload_mb: float = setting(20.0, check=above(0))
    max_upload_megapixels: float = setting(50.0, check=above(0))
    upload_max_side: int = setting(1920, check=at_least(1))  # larger photos are scaled down before inference
    uploads: bool = setting(True, "--no-uploads", "no photo upload: its worker process (and its memory) never starts")
    upload_idle_s: float = setting(120.0, check=above(0))
    client_timeout: float = setting(10.0, check=above(0))  # seconds a viewer may stall a send or idle on keep-alive


@dataclass(frozen=True)
class ConvertSettings:
    crf: int = setting(20, "--crf", "H.264 quality, lower is better", check=between(0, 51), metavar="N")
    preset: str = setting("veryfast", "--preset", "x264 speed/size trade-off", choices=X264_PRESETS)
    audio: str = setting("all", "--audio", "audio streams to copy: all, first or none (--no-audio: none); "
                         "subtitles are copied too", choices=AUDIO_CHOICES, booleans=("all", "none"))
    fragmented: bool = setting(True)
    raw: Path | None = setting(None, "--raw", "also save 16-bit depth: a .mkv (FFV1) or a folder of PNGs",
                               metavar="PATH")
    overwrite: bool = setting(False, "--overwrite", "replace existing outputs")
    keep_damaged: bool = setting(False, "--keep-damaged", "keep the output of a damaged input (exit 0)")
    ply: Path | None = setting(None, "--ply", "also save point clouds (binary PLY) in this folder", metavar="DIR")
    ply_every: int = setting(1, "--ply-every", "with --ply: every Nth frame", check=at_least(1), metavar="N")


@dataclass(frozen=True)
class Settings:
    """Every section; ``source`` is the preset or file the values came from (None: defaults)."""

    model: ModelSettings = ModelSettings()
    weights: WeightsSettings = WeightsSettings()
    render: RenderSettings = RenderSettings()
    stereo: StereoSettings = StereoSettings()
    pointcloud: PointCloudSettings = PointCloudSettings()
    live: LiveSettings = LiveSettings()
    web: WebSettings = WebSettings()
    convert: ConvertSettings = ConvertSettings()
    source: str | None = None


#: Section name -> its dataclass.
SECTIONS: dict[str, type] = {name: cls for name, cls in typing.get_type_hints(Settings).items() if name != "source"}


# --- presets ---------------------------------------------------------------------------------


def preset_names() -> list[str]:
    """The presets shipped with livedepth (``configs/*.toml``)."""
    return sorted(p.name[:-5] for p in resources.files("livedepth.configs").iterdir() if p.name.endswith(".toml"))


def read_config(name_or_path: str | Path) -> tuple[str, dict[str, Any]]:
    """(where it came from, table) for a TOML path or a preset name."""
    path = Path(name_or_path)
    try:
        if path.is_file():
            return str(path), tomllib.loads(path.read_text(encoding="utf-8"))
        preset = resources.files("livedepth.configs").joinpath(f"{name_or_path}.toml")
        if not preset.is_file():
            raise LivedepthError(f"config not found: {name_or_path} (a TOML file, or a preset: "
                                 f"{', '.join(preset_names())})")
        return f"preset {name_or_path}", tomllib.loads(preset.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LivedepthError(f"config {name_or_path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LivedepthError(f"cannot read config {name_or_path}: {exc}") from None


# --- values ----------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else repr(value)


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> int."""
    if isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def _convert(value: Any, annotation: Any, from_flag: bool) -> Any:
    """``value`` as the field's type, or raise ``ValueError`` with what was expected."""
    if annotation == (str | int) and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # [live] camera = 0: an index, kept as the string a flag would give
    kind = _base_type(annotation)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false (a TOML boolean, without quotes)")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_flag and isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        raise ValueError("expected a whole number")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_flag and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError("expected a number")
    if kind in (str, Path):
        if isinstance(value, str) and value:
            return kind(value)
        raise ValueError("expected a non-empty string")
    if typing.get_origin(kind) is tuple:  # range: [LO, HI] in TOML, LO,HI as a flag
        parts = value.split(",") if isinstance(value, str) else value
        try:
            if isinstance(parts, list) and len(parts) == 2 and not any(isinstance(p, bool) for p in parts):
                return float(parts[0]), float(parts[1])
        except (TypeError, ValueError):
            pass
        raise ValueError("expected two numbers, LO,HI (a TOML array [LO, HI])")
    raise TypeError(f"unsupported setting type {annotation!r}")


def _validated(section: str, name: str, value: Any, from_flag: bool, where: str) -> Any:
    cls = SECTIONS[section]
    spec = next(f for f in fields(cls) if f.name == name)
    label = f"{spec.metadata['flag']} {value}" if from_flag else f"{where}: [{section}] {name} = {_describe(value)}"
    if value is None:
        return None
    if spec.metadata["booleans"] and isinstance(value, bool):
        value = spec.metadata["booleans"][0 if value else 1]
    try:
        converted = _convert(value, typing.get_type_hints(cls)[name], from_flag)
    except ValueError as exc:
        raise LivedepthError(f"{label}: {exc}") from None
    choices = spec.metadata["choices"]
    problem = (f"must be one of {', '.join(choices)}" if choices and converted not in choices
               else spec.metadata["check"](converted) if spec.metadata["check"] else None)
    if problem:
        raise LivedepthError(f"{label}: {problem}")
    return converted


def _known_keys() -> list[str]:
    return [f"[{s}] {f.name}" for s, cls in SECTIONS.items() for f in fields(cls)]


def _unknown(what: str, where: str, candidates: Iterable[str]) -> LivedepthError:
    near = difflib.get_close_matches(what, list(candidates), n=1, cutoff=0.5)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return LivedepthError(f"{where}: unknown key {what}{hint}")


def _check_keys(table: Mapping[str, Any], where: str) -> None:
    for section, values in table.items():
        if section not in SECTIONS:
            raise _unknown(f"[{section}]", where, [f"[{s}]" for s in SECTIONS])
        if not isinstance(values, dict):
            raise LivedepthError(f"{where}: [{section}] must be a table")
        names = {f.name for f in fields(SECTIONS[section])}
        for key in values:
            if key not in names:
                raise _unknown(f"[{section}] {key}", where, _known_keys())


def _check_model_size(model: dict[str, Any], config: Mapping[str, Any], flags: Mapping[tuple[str, str], Any],
                      where: str | None) -> None:
    """Check ``[model] size`` against the chosen model's rule (one line), in place.

    A config's size belongs to the model that config names (``[model] name``, else the default
    model): with another model chosen by ``--model``, it is dropped and that model's default
    size applies, so the presets (sized for midas-small) keep their meaning. ``--size`` always
    applies.
    """
    size, name = model.get("size"), model.get("name", registry.DEFAULT_MODEL)
    if size is None:
        return
    if flags.get(("model", "size")) is not None:
        label = f"--size {flags[('model', 'size')]}"
    elif "size" in config:
        config_model = config.get("name", registry.DEFAULT_MODEL)
        if config_model != name:
            log.info("config %s: [model] size = %d is for %s; %s takes its own default size (--size to choose)",
                     where, size, config_model, name)
            del model["size"]
            return
        label = f"config {where}: [model] size = {size}"
    else:
        label = f"defaults: [model] size = {size}"
    problem = registry.get(name).size_problem(size)
    if problem:
        raise LivedepthError(f"{label}: {problem}")


def load_settings(
    config: str | Path | None = None,
    flags: Mapping[tuple[str, str], Any] | None = None,
    defaults: Mapping[tuple[str, str], Any] | None = None,
) -> Settings:
    """Settings from ``defaults`` (per command), a preset or TOML file, then ``flags``.

    ``flags`` and ``defaults`` map ``(section, key)`` to a value; a flag's value may be the
    string the user typed. Raises a one-line :class:`LivedepthError` for any bad value.
    """
    where, table = read_config(config) if config is not None else (None, {})
    _check_keys(table, where or "settings")
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for (section, key), value in (defaults or {}).items():
        values[section][key] = _validated(section, key, value, False, "defaults")
    for section, entries in table.items():
        for key, value in entries.items():
            values[section][key] = _validated(section, key, value, False, f"config {where}")
    for (section, key), value in (flags or {}).items():
        if value is not None:
            values[section][key] = _validated(section, key, value, True, "")
    _check_model_size(values["model"], table.get("model", {}), flags or {}, where)
    return Settings(**{name: replace(SECTIONS[name](), **values[name]) for name in SECTIONS}, source=where)
