"""What the benchmark scripts share: the test helpers (clips, synthetic weights) and a model-only loop.

Run a benchmark from the repo root as ``.venv/bin/python benchmarks/NAME.py``; this folder is then
on ``sys.path``, and this module puts ``tests/`` (the clip and weight helpers) there too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))


def synthetic_weights(folder: Path, model: str = "midas-small") -> Path:
    """``model``'s synthetic official-layout weights, saved in ``folder`` under the official file
    name, as the official file is written (timings do not depend on the values)."""
    import torch
    from support.golden import expand_synthetic_weights
    from support.golden_da2 import synthetic_state

    from livedepth.model import registry

    state = {"midas-small": expand_synthetic_weights, "depth-anything-v2-small": synthetic_state}[model]()
    path = folder / registry.get(model).weights.filename
    torch.save(state, path)
    return path


def live_clip(folder: Path, seconds: float) -> Path:
    """A silent 640x480 clip at 30 fps in ``folder``, long enough for live runs of ``seconds`` (30 s at least)."""
    from support.clips import make_clip

    clip = folder / "clip.mp4"
    make_clip(clip, frames=round(30 * max(30.0, 3 * seconds)), width=640, height=480, rate=Fraction(30), audio=None)
    return clip


def model_only_fps(estimator, frames: list, seconds: float) -> float:
    """``estimator.predict`` on ``frames`` in a loop for ``seconds``: frames per second."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        estimator.predict(frames[count % len(frames)])
        count += 1
    return count / (time.perf_counter() - start)


def benchmark_args(doc: str, seconds: float, rounds: int,
                   more: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The flags every benchmark takes (``--model --size --weights --backend --threads --seconds
    --rounds``) and ``more``; also makes idle OpenMP threads sleep, as ``livedepth`` does, before torch loads."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--model", default="midas-small", help="midas-small or depth-anything-v2-small")
    parser.add_argument("--size", type=int, help="the model's --size (default: its own)")
    parser.add_argument("--weights", type=Path, help="default: the model's synthetic official-layout weights")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seconds", type=float, default=seconds, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=rounds)
    if more is not None:
        more(parser)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return args


@contextmanager
def workspace(weights: Path | None, model: str = "midas-small") -> Iterator[tuple[Path, Path]]:
    """A temporary folder, and ``weights`` or ``model``'s synthetic weights saved in it."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp), weights or synthetic_weights(Path(tmp), model)
