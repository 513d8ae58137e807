"""livedepth: real-time depth (MiDaS v2.1 small and more) on a plain CPU.

The public API, imported on first use so that ``import livedepth`` stays light:

- ``livedepth.load_network(model_name, weights_path)``: the model's torch network, loaded;
- ``livedepth.create_estimator(model_name, weights=None, size=None, keep_aspect=False,
  backend="auto", threads=0)``: a loaded estimator (``predict(frame_bgr)``, ``backend_name``);
- ``livedepth.stereo_views``: left and right views from a frame and its depth.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_API = {"load_network": "livedepth.model.network", "create_estimator": "livedepth.inference.estimator",
        "stereo_views": "livedepth.render.stereo"}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'livedepth' has no attribute {name!r}")
