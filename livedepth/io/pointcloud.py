"""Point clouds from a frame and its normalised depth, as coloured binary PLY files.

MiDaS depth is inverse and relative, so the cloud's shape rests on two choices, both settings:
the nearest and the farthest point are at distances 1 and ``depth_ratio``, and the normalised depth
``n`` (1 nearest) moves linearly in *inverse* distance between them,
``1/z = n + (1 - n) / depth_ratio``, as the model's output itself is (close to) an affine function of
inverse depth. A pinhole camera with a horizontal field of view ``fov`` then places pixel ``(u, v)``
at ``((u - cx) z / f, (v - cy) z / f, z)`` with ``f = (W / 2) / tan(fov / 2)`` and ``(cx, cy)`` the
image centre: OpenCV's camera axes (x right, y down, z forward, the camera at the origin), in units
of the nearest distance. Pixels without a finite depth are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from livedepth.core.files import write_atomically

#: One vertex of the PLY body: position, then colour (15 bytes, little-endian, packed).
VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


@dataclass(frozen=True)
class Camera:
    """The pinhole camera and the distance range that turn normalised depth into a 3D shape."""

    fov: float = 60.0  # horizontal field of view, degrees
    depth_ratio: float = 10.0  # farthest distance / nearest distance

    def __post_init__(self) -> None:
        if not 0 < self.fov < 180:
            raise ValueError(f"fov must be between 0 and 180 degrees, got {self.fov}")
        if not self.depth_ratio > 1:
            raise ValueError(f"depth_ratio must be greater than 1, got {self.depth_ratio}")

    def points(self, frame_bgr: np.ndarray, near: np.ndarray) -> np.ndarray:
        """The :data:`VERTEX` records of every pixel with a finite ``near`` (float in [0, 1], 1 nearest),
        row by row, coloured from ``frame_bgr`` (resized to the depth's size if it is not)."""
        h, w = near.shape
        if frame_bgr.shape[:2] != (h, w):
            frame_bgr = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_AREA)
        n = np.clip(near, 0.0, 1.0).astype(np.float32, copy=False)
        z = 1.0 / (n * np.float32(1 - 1 / self.depth_ratio) + np.float32(1 / self.depth_ratio))
        focal = np.float32((w / 2) / math.tan(math.radians(self.fov) / 2))
        position = np.empty((h, w, 3), np.float32)
        np.multiply(((np.arange(w, dtype=np.float32) - np.float32((w - 1) / 2)) / focal)[None, :], z,
                    out=position[..., 0])
        np.multiply(((np.arange(h, dtype=np.float32) - np.float32((h - 1) / 2)) / focal)[:, None], z,
                    out=position[..., 1])
        position[..., 2] = z
        packed = np.empty((h, w, VERTEX.itemsize), np.uint8)  # the records, byte by byte
        packed[..., :12] = position.view(np.uint8)
        packed[..., 12:] = frame_bgr[..., ::-1]  # BGR -> red, green, blue
        valid = np.isfinite(near)
        rows = packed.reshape(-1, VERTEX.itemsize) if valid.all() else packed[valid]
        return rows.view(VERTEX).reshape(-1)

    def ply(self, frame_bgr: np.ndarray, near: np.ndarray) -> bytes:
        """The point cloud of ``frame_bgr`` and ``near`` as a binary little-endian PLY file."""
        return ply_bytes(self.points(frame_bgr, near),
                         f"livedepth point cloud: fov {self.fov:g} deg, depth ratio {self.depth_ratio:g}, "
                         "x right, y down, z forward")

    def save(self, path: Path, frame_bgr: np.ndarray, near: np.ndarray) -> None:
        """Write the PLY to ``path`` (through a temporary file, renamed when complete)."""
        write_atomically(path, self.ply(frame_bgr, near))


def ply_bytes(vertices: np.ndarray, comment: str = "") -> bytes:
    """A binary little-endian PLY of :data:`VERTEX` records."""
    comment_line = f"comment {comment}\n" if comment else ""
    header = ("ply\nformat binary_little_endian 1.0\n" + comment_line + f"element vertex {vertices.size}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    return header.encode("ascii") + vertices.astype(VERTEX, copy=False).tobytes()
