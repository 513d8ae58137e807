"""``auto``: the fastest installed faithful fp32 backend for a model, measured once and cached.

The first time it meets a combination of model (name and graph version), installed faithful
fp32 backends, input size, threads, CPU model and package versions, it times each backend for
a few forwards (under ``AUTO_BUDGET_S`` in all), keeps the fastest in ``auto-backend.json`` in
the livedepth cache and reuses it afterwards. ``$LIVEDEPTH_BACKEND`` replaces ``auto`` with a
backend of the user's choice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from livedepth.backends.base import REQUIRES, Backend, Network, is_available, relative_rms
from livedepth.backends.create import create_backend
from livedepth.backends.export import graph_version
from livedepth.backends.system import available_cores, cpu_model, package_versions
from livedepth.core.errors import LivedepthError
from livedepth.core.files import read_cache, write_cache

log = logging.getLogger(__name__)

#: Faithful fp32 backends, the candidates of ``auto``, in the order that breaks near-ties (the
#: fastest first as measured with ``livedepth bench`` on a desktop CPU).
FP32_PREFERENCE = ("onnx", "openvino", "torch")
#: ``auto`` times its candidates for at most this long in all (seconds of forwards) ...
AUTO_BUDGET_S = 2.5
#: ... in at most this many timed rounds (after one untimed warm-up round).
AUTO_ROUNDS = 5
#: A candidate earlier in ``FP32_PREFERENCE`` is kept unless another is more than this much
#: faster (median): a few forwards on a busy machine cannot tell closer backends apart.
AUTO_MARGIN = 0.10
#: ``auto`` leaves out a candidate whose output differs from the reference model's by more than
#: this relative RMS (the golden tests' bar): a runtime that computes in lower precision on this
#: CPU (an fp16 default, a broken kernel) is fast but not faithful.
AUTO_FAITHFUL_RMS = 1e-4
#: The file in the livedepth cache that keeps ``auto``'s measured choices.
AUTO_CACHE = "auto-backend"


def auto_candidates() -> list[str]:
    """The installed faithful fp32 backends, in ``FP32_PREFERENCE`` order (int8 is never one)."""
    return [b for b in FP32_PREFERENCE if is_available(b)]


def auto_combination(network: Network, candidates: Sequence[str], height: int, width: int,
                     threads: int | None) -> dict:
    """What ``auto``'s choice depends on; its digest keys the cache."""
    runtimes = sorted({"torch", *(REQUIRES.get(name, ("torch",))[0] for name in candidates)})
    return {
        "model": network.name,
        "candidates": list(candidates),
        "versions": package_versions(runtimes),
        "graph": graph_version(network),
        "faithful_rms": AUTO_FAITHFUL_RMS,  # a choice made without (or with another) check is not reused
        "input": f"{height}x{width}",
        "threads": threads or available_cores(),
        "cpu": cpu_model(),
        "machine": platform.machine(),
    }


def auto_key(combination: dict) -> str:
    return hashlib.sha256(json.dumps(combination, sort_keys=True).encode()).hexdigest()[:16]


def time_forwards(
    runners: dict[str, Callable[[np.ndarray], object]],
    batch: np.ndarray,
    budget_s: float = AUTO_BUDGET_S,
    rounds: int = AUTO_ROUNDS,
) -> dict[str, list[float]]:
    """Milliseconds per forward of each runner on ``batch``.

    One untimed warm-up round, then up to ``rounds`` timed rounds, each runner once per round
    in a rotating order (so a busy machine slows all alike), while the next round still fits
    in ``budget_s`` (warm-up included). At least one round is timed; if the warm-up round alone
    took over half the budget, its times are the measurement.
    """
    names = list(runners)
    start = time.perf_counter()
    warmup: dict[str, list[float]] = {}
    for name in names:
        t0 = time.perf_counter()
        runners[name](batch)
        warmup[name] = [(time.perf_counter() - t0) * 1e3]
    round_s = time.perf_counter() - start
    if round_s > budget_s / 2:
        return warmup
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        t_round = time.perf_counter()
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            runners[name](batch)
            times[name].append((time.perf_counter() - t0) * 1e3)
        round_s = time.perf_counter() - t_round
        if time.perf_counter() - start + round_s > budget_s:
            break
    return times


def pick_fastest(medians: dict[str, float], order: Sequence[str] = FP32_PREFERENCE) -> str:
    """The first of ``order`` within ``AUTO_MARGIN`` of the fastest median."""
    best = min(medians.values())
    return next(name for name in [*order, *medians] if name in medians and medians[name] <= best * (1 + AUTO_MARGIN))


def _timings_text(timings: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(timings.items(), key=lambda kv: kv[1]))


@dataclass
class AutoChoice:
    """What :func:`choose_auto` picked: the backend, built, and the medians (ms) it was chosen on."""

    name: str
    backend: Backend
    timings_ms: dict[str, float]
    measured: bool  # False: the choice came from the cache (or there was nothing to choose from)


def faithful(built: dict[str, Backend], network: Network, batch: np.ndarray) -> dict[str, Backend]:
    """The backends of ``built`` whose output on ``batch`` is within ``AUTO_FAITHFUL_RMS`` of the
    loaded network's; the others are left out with a warning that gives their error."""
    with torch.inference_mode():
        reference = network.load().eval()(torch.from_numpy(batch))[0].float().numpy()
    kept = {}
    for name, backend in built.items():
        try:
            error = relative_rms(np.asarray(backend(batch)), reference)
        except Exception as exc:  # noqa: BLE001 - a runtime that does not work here is no candidate
            log.warning("auto: leaving %s out: %s: %s", name, type(exc).__name__, exc)
            continue
        if error > AUTO_FAITHFUL_RMS:
            log.warning("auto: leaving %s out: its output differs from the reference model's by %.2g "
                        "(relative RMS; at most %.0e is faithful)", name, error, AUTO_FAITHFUL_RMS)
            continue
        kept[name] = backend
    return kept


def choose_auto(network: Network, *, threads: int | None, input_hw: tuple[int, int]) -> AutoChoice:
    """The fastest installed faithful fp32 backend for ``network`` at an ``input_hw`` input, measured.

    The first time a combination (:func:`auto_combination`) comes up, every candidate is built
    (the onnx and openvino ones on the same exported model, which the winner keeps), prepared
    for ``input_hw``, checked against the reference model (:func:`faithful`) and timed
    (:func:`time_forwards`); the winner (:func:`pick_fastest`) and
    the medians are logged and saved in ``auto-backend.json`` in the livedepth cache. Later
    starts read the choice back and build only the winner. A candidate that fails to build or
    run, or whose output is not faithful, is left out with a warning.
    """

    def build(name: str) -> Backend:
        return create_backend(name, network, threads=threads)

    candidates = auto_candidates()
    if len(candidates) == 1:
        return AutoChoice(candidates[0], build(candidates[0]), {}, False)
    height, width = input_hw
    combination = auto_combination(network, candidates, height, width, threads)
    key = auto_key(combination)
    entry = read_cache(AUTO_CACHE, key)
    if isinstance(entry, dict) and entry.get("backend") in candidates:
        timings = {k: float(v) for k, v in (entry.get("median_ms") or {}).items()}
        log.info("auto backend: %s, as measured on %s (median ms per forward: %s; %s)", entry["backend"],
                 entry.get("measured_at", "an earlier start"), _timings_text(timings), AUTO_CACHE)
        return AutoChoice(entry["backend"], build(entry["backend"]), timings, False)

    built: dict[str, Backend] = {}
    for name in candidates:
        try:
            backend = build(name)
            backend.prepare(height, width)
            built[name] = backend
        except Exception as exc:  # noqa: BLE001 - a runtime that does not work here is no candidate
            log.warning("auto: leaving %s out: %s: %s", name, type(exc).__name__, exc)
    batch = np.random.default_rng(0).standard_normal((1, 3, height, width)).astype(np.float32)
    built = faithful(built, network, batch)
    if not built:
        raise LivedepthError("no faithful fp32 backend works here (see the warnings above)")
    times = time_forwards(dict(built), batch)
    medians = {name: round(float(np.median(ms)), 2) for name, ms in times.items()}
    winner = pick_fastest(medians, candidates)
    rounds = min(len(ms) for ms in times.values())
    entry = {
        "backend": winner,
        "median_ms": medians,
        "rounds": rounds,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "combination": combination,
    }
    write_cache(AUTO_CACHE, key, entry)
    log.info("auto backend: %s; median ms per forward at %dx%d, %s thread(s), %d round(s): %s", winner, height,
             width, combination["threads"], rounds, _timings_text(medians))
    return AutoChoice(winner, built[winner], medians, True)
