"""Builders for the rendering side: the colorizer and the temporal filter the ``[render]`` settings ask for."""

from __future__ import annotations

from livedepth.render.colorize import Colorizer
from livedepth.render.temporal import TemporalFilter
from livedepth.settings import RenderSettings, Settings


def build_colorizer(render: RenderSettings) -> Colorizer:
    """The colorizer for a ``[render]`` section."""
    return Colorizer(colormap=render.colormap, layout=render.layout, alpha=render.alpha, normalize=render.normalize,
                     value_range=render.range, invert=render.invert)


def make_temporal(settings: Settings):
    """The temporal filter ``[render] temporal`` asks for (a new one per video), or None."""
    if settings.render.temporal != "on":
        return None
    return TemporalFilter()
