"""Export a network for one fixed input size: ONNX (run by ONNX Runtime and OpenVINO) and OpenVINO IR.

Generic: any module mapping a ``(1, 3, h, w)`` float32 input to a depth map. Everything that
depends on the input size (Depth Anything's resampled position embedding, the head's resize
targets) is traced as constants, so each input size gets its own file. Files are written to a
temporary name and renamed on success.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

#: ONNX opset of the exported graphs (LayerNormalization is native from 17).
OPSET = 17


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` (same suffix) that replaces it when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def export_onnx(module: nn.Module, path: Path, height: int, width: int, opset: int = OPSET) -> Path:
    """Trace ``module`` (eval, fp32, CPU) on a ``(1, 3, height, width)`` input into ``path``.

    The graph's input is ``input`` and its output ``depth``.
    """
    with _atomic(path) as tmp, warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings: the size-dependent values become constants
        torch.onnx.export(
            module.eval(),
            (torch.zeros(1, 3, height, width),),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["depth"],
        )
    log.info("exported %s", path)
    return path


def export_openvino(onnx_path: Path, xml_path: Path, import_openvino: Callable[[], object]) -> Path:
    """Convert an exported ONNX file to OpenVINO IR (``xml_path`` and its ``.bin``), weights in fp32.

    ``ov.save_model`` compresses weights to fp16 unless told not to, which is not faithful.
    ``import_openvino`` imports the package (the backends layer's telemetry-free import).
    """
    ov = import_openvino()
    model = ov.convert_model(str(onnx_path))
    bin_path = xml_path.with_suffix(".bin")
    with _atomic(xml_path) as tmp_xml:
        tmp_bin = tmp_xml.with_suffix(".bin")
        try:
            ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
            os.replace(tmp_bin, bin_path)
        finally:
            tmp_bin.unlink(missing_ok=True)
    log.info("converted %s", xml_path)
    return xml_path
