"""What a measured choice depends on besides the model: the CPU, the installed packages, the cores."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Sequence
from pathlib import Path


def cpu_model() -> str:
    """The CPU's name: ``model name`` on x86; the board model and the cores' part number on
    ARM (``Raspberry Pi 4 Model B Rev 1.4, CPU part 0xd08``); else what ``platform`` knows."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if fields.get("model name"):
        return fields["model name"]
    parts = [fields[k] for k in ("Model", "Hardware") if fields.get(k)]
    if fields.get("CPU part"):
        parts.append(f"CPU implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}")
    return ", ".join(parts) or platform.processor() or platform.machine() or "unknown"


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed versions of the distributions ``names`` (None: not installed), without importing them."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
