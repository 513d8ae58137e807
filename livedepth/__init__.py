"""livedepth: real-time MiDaS v2.1 small depth on a plain CPU."""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    """``livedepth.stereo_views``, imported on first use (``import livedepth`` stays light)."""
    if name == "stereo_views":
        from livedepth.render.stereo import stereo_views

        return stereo_views
    raise AttributeError(f"module 'livedepth' has no attribute {name!r}")
