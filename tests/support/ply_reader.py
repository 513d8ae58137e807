"""Reads the binary little-endian PLY files livedepth writes, from their own header, with numpy."""

from __future__ import annotations

import numpy as np


def read_ply(data: bytes) -> tuple[list[str], np.ndarray]:
    """The header lines and the vertices of a binary little-endian PLY, from its own header."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"] and header[-1] == "end_header"
    count = int(next(line for line in header if line.startswith("element vertex ")).split()[2])
    kinds = {"float": "<f4", "uchar": "u1"}
    dtype = np.dtype([(name, kinds[kind]) for _, kind, name in (line.split() for line in header
                                                                 if line.startswith("property "))])
    assert len(data) - end == count * dtype.itemsize
    return header, np.frombuffer(data[end:], dtype)
