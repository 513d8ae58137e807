"""Depth for one image file: read, estimate, colorize, write (the ``image`` command)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import cv2
import numpy as np

from livedepth.app.estimator import build_estimator
from livedepth.app.render import build_colorizer
from livedepth.core.errors import LivedepthError
from livedepth.core.files import check_writable, write_atomically
from livedepth.io.pointcloud import Camera
from livedepth.settings import Settings

log = logging.getLogger(__name__)


def read_image(path: Path) -> np.ndarray:
    """A BGR uint8 image, or a one-line error."""
    if not path.is_file():
        raise LivedepthError(f"input not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise LivedepthError(f"cannot read image: {path} (not an image OpenCV can decode)")
    return image


def encode_image(image: np.ndarray, path: Path) -> bytes:
    """``image`` encoded in the format ``path``'s extension names (PNG without one)."""
    ok, buf = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise LivedepthError(f"cannot encode an image as {path.suffix or '(no extension)'}: {path}")
    return buf.tobytes()


def depth_image(settings: Settings, source: Path, output: Path, raw: Path | None = None,
                weights: str | Path | None = None) -> np.ndarray | None:
    """Write the colorized depth of ``source`` to ``output``, or its point cloud when ``output``
    ends in .ply (and the float32 depth to ``raw`` as .npy); returns the rendered image (None for
    a point cloud). Inputs and outputs are checked before the model loads."""
    colorizer = build_colorizer(settings.render, settings.stereo)
    image = read_image(source)
    check_writable(output)
    cloud = output.suffix.lower() == ".ply"
    if output.suffix and not cloud and not cv2.haveImageWriter(str(output)):
        raise LivedepthError(f"unsupported output image type: {output.suffix}")
    if raw is not None:
        check_writable(raw)
    depth = build_estimator(settings, weights).predict(image)
    rendered = None
    if cloud:

        points = settings.pointcloud
        Camera(points.fov, points.depth_ratio).save(output, image, colorizer.unit_depth(depth, fresh=True))
        log.info("wrote %s (point cloud of %dx%d pixels)", output, image.shape[1], image.shape[0])
    else:
        rendered = colorizer.render(depth, image)
        write_atomically(output, encode_image(rendered, output))
        log.info("wrote %s (%dx%d, %s)", output, rendered.shape[1], rendered.shape[0], colorizer.layout)
    if raw is not None:
        buf = io.BytesIO()
        np.save(buf, depth)
        write_atomically(raw, buf.getvalue())
    return rendered
