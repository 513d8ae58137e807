"""Output files: checks that a path can be written, and writes that never leave half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from livedepth.errors import LivedepthError


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


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON, written atomically."""
    write_atomically(path, (json.dumps(data, indent=2) + "\n").encode())
