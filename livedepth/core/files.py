"""Output files: checks that a path can be written, and writes that never leave half a file."""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
from pathlib import Path

from livedepth.core.errors import LivedepthError


def writable(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (permission bits do not bind root)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def check_writable(path: Path) -> None:
    """Raise a one-line error unless ``path`` can be created in an existing, writable folder."""
    folder = path.parent
    if not folder.is_dir():
        raise LivedepthError(f"output folder does not exist: {folder}")
    if not writable(folder):
        raise LivedepthError(f"output folder is not writable: {folder}")


def create_temp(path: Path) -> tuple[int, Path]:
    """A new empty file ``.NAME.XXXXXXXX.part`` beside ``path``, to be renamed to it when complete;
    returns its descriptor (open for writing) and path. Unlike ``mkstemp`` (always 0600) it is
    created with the umask's permissions, like any other file the user writes."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    check_writable(path)
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON, written atomically."""
    write_atomically(path, (json.dumps(data, indent=2) + "\n").encode())


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/livedepth``, or ``~/.cache/livedepth``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livedepth"


def _cache_file(name: str) -> Path:
    return cache_dir() / f"{name}.json"


def read_cache(name: str, key: str) -> dict | None:
    """The entry ``key`` of the livedepth cache file ``NAME.json``, or None."""
    try:
        return json.loads(_cache_file(name).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def write_cache(name: str, key: str, value: dict) -> None:
    """Store ``value`` as the entry ``key`` of the cache file ``NAME.json`` (atomically; a cache
    that cannot be written is only logged)."""
    path = _cache_file(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entries = {}
        entries[key] = value
        write_atomically(path, (json.dumps(entries, indent=2) + "\n").encode())
    except (OSError, LivedepthError) as exc:
        logging.getLogger(__name__).warning("could not write the cache %s: %s", path, exc)
