"""What the benchmark scripts share: the test helpers (clips, synthetic weights) and a model-only loop.

Run a benchmark from the repo root as ``.venv/bin/python benchmarks/NAME.py``; this folder is then
on ``sys.path``, and this module puts ``tests/`` (the clip and weight helpers) there too.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))


def synthetic_weights(folder: Path) -> Path:
    """The synthetic official-layout weights, saved in ``folder`` (timings do not depend on the values)."""
    from golden import save_synthetic_weights

    return save_synthetic_weights(folder / "midas_v21_small_256.pt")


def model_only_fps(estimator, frames: list, seconds: float) -> float:
    """``estimator.predict`` on ``frames`` in a loop for ``seconds``: frames per second."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        estimator.predict(frames[count % len(frames)])
        count += 1
    return count / (time.perf_counter() - start)
