"""Each backend's error against the golden fixtures, for both models: fp32, int8 and bf16 side by side.

On the network-only fixtures (a preprocessed input and the official fp32 output, synthetic
weights), every backend runs through the real estimator: the fp32 ones (torch, onnx, openvino),
int8 calibrated on the fixture's own test image (preprocessed at the fixture's input size) and
on the estimator's default (8 synthetic frames), and bf16 where this CPU has bf16 arithmetic (else "not on this CPU"). Cases: midas-small at
256x256; depth-anything-v2-small at 518x518 and at the live size 252 (the 252x336 input the
official preprocessing makes of the test image). It prints, per case and backend,
rel = max|y - g| / max|g| (the golden tests' metric, faithful at <= 1e-4), the relative RMS
||y - g|| / ||g||, and for int8 and bf16 the relative RMS their start-up check logged against
fp32. The synthetic ternary weights are far from trained ones, so int8's figures here say
little about what trained weights give.

    .venv/bin/python benchmarks/reduced_precision.py --threads 2
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from common import synthetic_weights

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from support import golden, golden_da2  # noqa: E402

from livedepth.backends.base import cpu_problem, is_available, relative_rms  # noqa: E402
from livedepth.backends.system import cpu_model  # noqa: E402
from livedepth.bench import cpu_features  # noqa: E402
from livedepth.inference.estimator import DepthEstimator  # noqa: E402
from livedepth.model import depth_anything as da  # noqa: E402

#: Table label -> (backend, calibrated on the model's test image: else the estimator's default).
VARIANTS = {"torch": ("torch", False), "onnx": ("onnx", False), "openvino": ("openvino", False),
            "int8 (test image)": ("int8", True), "int8 (synthetic)": ("int8", False), "bf16": ("bf16", False)}
#: A case: (name, network input, golden network output (h, w)).
Case = tuple[str, np.ndarray, np.ndarray]


def midas_cases() -> list[Case]:
    x = golden.load_fixture("net_input_1x3x256x256.npy")
    return [("net 256x256", x, golden.load_fixture("net_output_1x256x256.npy")[0])]


def da2_cases() -> list[Case]:
    goldens = golden_da2.stored_goldens()
    frame = cv2.imread(str(golden_da2.TEST_IMAGE))
    live = golden_da2.checked("pre_input_1x3x252x336",
                              da.preprocess(frame, da.input_size(*frame.shape[:2], 252, keep_aspect=True)))
    return [("net 518x518", goldens["net_input_1x3x518x518"], goldens["net_output_1x518x518"][0]),
            ("pre 252x336 (live size 252)", live, goldens["pre_output_1x252x336"][0])]


def save_da2_weights(folder: Path) -> Path:
    path = folder / "depth_anything_v2_vits.pth"
    torch.save(golden_da2.synthetic_state(), path)
    return path


#: model -> (its test image, how its synthetic weights are saved in a folder, its cases).
MODELS: dict[str, tuple[Path, Callable[[Path], Path], Callable[[], list[Case]]]] = {
    "midas-small": (golden.TEST_IMAGE, synthetic_weights, midas_cases),
    da.NAME: (golden_da2.TEST_IMAGE, save_da2_weights, da2_cases),
}


def why_not(name: str) -> str | None:
    """Why ``name`` does not run here (None: it does)."""
    if cpu_problem(name):
        return "not on this CPU"
    return None if is_available(name) else "not installed"


def measure(model: str, weights: Path, label: str, threads: int, cases: list[Case]) -> list[list[str]]:
    """One table row per case: rel, relative RMS and the start-up check of the variant ``label``."""
    backend, on_image = VARIANTS[label]
    calibration = [cv2.imread(str(MODELS[model][0]))] if on_image else None
    estimator = DepthEstimator(model, weights=weights, backend=backend, threads=threads, keep_aspect=True,
                               calibration=calibration).load()
    rows = []
    for case, x, g in cases:
        y = estimator.backend(x)
        check = getattr(estimator.backend, "check_error", None)  # int8 and bf16: logged at start-up, per size
        rows.append([model, case, label, f"{golden.rel_error(y, g):.2e}", f"{relative_rms(y, g):.2e}",
                     "" if check is None else f"{check:.2e}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    torch.set_num_threads(args.threads)
    print(f"machine: {cpu_model()} ({', '.join(cpu_features())}), {args.threads} threads; synthetic weights")
    head = ["model", "case", "backend", "rel max", "rel RMS", "start-up check (RMS vs fp32)"]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            _, save_weights, make_cases = MODELS[model]
            folder = Path(tmp) / model
            folder.mkdir()
            weights, cases = save_weights(folder), make_cases()
            for label, (backend, _) in VARIANTS.items():
                reason = why_not(backend)
                if reason:
                    rows += [[model, case, label, reason, "", ""] for case, _, _ in cases]
                else:
                    rows += measure(model, weights, label, args.threads, cases)
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    for row in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip(), flush=True)


if __name__ == "__main__":
    main()
