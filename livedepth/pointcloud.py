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

from livedepth.files import write_atomically

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
        coloured from ``frame_bgr`` (resized to the depth's size if it is not)."""
        h, w = near.shape
        if frame_bgr.shape[:2] != (h, w):
            frame_bgr = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_AREA)
        valid = np.isfinite(near)
        n = np.clip(near[valid], 0.0, 1.0).astype(np.float32)
        z = 1.0 / (n + (1.0 - n) / np.float32(self.depth_ratio))
        focal = (w / 2) / math.tan(math.radians(self.fov) / 2)
        rows, cols = np.nonzero(valid)
        out = np.empty(z.size, VERTEX)
        out["x"] = (cols - (w - 1) / 2) / focal * z
        out["y"] = (rows - (h - 1) / 2) / focal * z
        out["z"] = z
        colours = frame_bgr[valid]
        out["red"], out["green"], out["blue"] = colours[:, 2], colours[:, 1], colours[:, 0]
        return out

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
