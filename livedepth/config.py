"""TOML presets (``configs/*.toml``) and the rule that command-line flags override them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from livedepth.errors import LivedepthError

#: Presets shipped with the project: desktop (live default), convert, rpi.
PRESETS_DIR = Path(__file__).resolve().parent.parent / "configs"


class Config:
    """A loaded preset: named sections of settings, with the file it came from."""

    def __init__(self, data: dict[str, Any] | None = None, path: Path | None = None) -> None:
        self.data = data or {}
        self.path = path

    def section(self, name: str) -> dict[str, Any]:
        """The ``[name]`` table, or an empty dict."""
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise LivedepthError(f"config {self.path}: [{name}] must be a table")
        return value

    def pick(self, section: str, key: str, flag: Any, default: Any = None) -> Any:
        """A flag given on the command line wins, then the config, then ``default``."""
        if flag is not None:
            return flag
        return self.section(section).get(key, default)


def load_config(name_or_path: str | Path | None, default_preset: str | None = None) -> Config:
    """Load a TOML file by path, or a preset from ``configs/`` by name.

    With no name, ``default_preset`` is used when it exists; otherwise the config is empty.
    """
    if name_or_path is None:
        if default_preset is None or not (PRESETS_DIR / f"{default_preset}.toml").is_file():
            return Config()
        name_or_path = default_preset
    path = Path(name_or_path)
    if not path.is_file():
        preset = PRESETS_DIR / f"{name_or_path}.toml"
        if not preset.is_file():
            raise LivedepthError(f"config not found: {name_or_path} (a TOML path, or a preset in {PRESETS_DIR})")
        path = preset
    try:
        with path.open("rb") as fh:
            return Config(tomllib.load(fh), path)
    except tomllib.TOMLDecodeError as exc:
        raise LivedepthError(f"config {path} is not valid TOML: {exc}") from None
