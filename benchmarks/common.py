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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))


def synthetic_weights(folder: Path) -> Path:
    """The synthetic official-layout weights, saved in ``folder`` (timings do not depend on the values)."""
    from support.golden import save_synthetic_weights

    return save_synthetic_weights(folder / "midas_v21_small_256.pt")


def model_only_fps(estimator, frames: list, seconds: float) -> float:
    """``estimator.predict`` on ``frames`` in a loop for ``seconds``: frames per second."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        estimator.predict(frames[count % len(frames)])
        count += 1
    return count / (time.perf_counter() - start)


def benchmark_args(doc: str, seconds: float, rounds: int,
                   more: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The flags every benchmark takes (``--weights --backend --threads --seconds --rounds``) and
    ``more``; also makes idle OpenMP threads sleep, as ``livedepth`` does, before torch loads."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="default: the synthetic official-layout weights")
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
def workspace(weights: Path | None) -> Iterator[tuple[Path, Path]]:
    """A temporary folder, and ``weights`` or the synthetic weights saved in it."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp), weights or synthetic_weights(Path(tmp))
