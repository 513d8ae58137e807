"""What a measured choice depends on besides the model: the CPU (and its flags), the installed packages, the cores."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Sequence
from pathlib import Path


#: CPU flags that mean bf16 arithmetic: x86 AVX512-BF16 or AMX-BF16 (``flags``), Arm BF16 (``Features``).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def _cpuinfo() -> dict[str, str]:
    """The first value of each ``/proc/cpuinfo`` field (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's name: ``model name`` on x86; the board model and the cores' part number on
    ARM (``Raspberry Pi 4 Model B Rev 1.4, CPU part 0xd08``); else what ``platform`` knows."""
    fields = _cpuinfo()
    if fields.get("model name"):
        return fields["model name"]
    parts = [fields[k] for k in ("Model", "Hardware") if fields.get(k)]
    if fields.get("CPU part"):
        parts.append(f"CPU implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}")
    return ", ".join(parts) or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``flags`` on x86, ``Features`` on ARM; empty where unknown)."""
    fields = _cpuinfo()
    return frozenset((fields.get("flags") or fields.get("Features") or "").split())


def cpu_has_bf16() -> bool:
    """Whether the CPU has bf16 arithmetic (:data:`BF16_FLAGS`), which the bf16 backend needs."""
    return not BF16_FLAGS.isdisjoint(cpu_flags())


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
