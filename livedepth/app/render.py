"""Builders for the rendering side: the colorizer and the temporal filter the ``[render]`` settings ask for."""

from __future__ import annotations

from dataclasses import asdict

from livedepth.render.colorize import Colorizer
from livedepth.render.stereo import Stereo
from livedepth.render.temporal import TemporalFilter
from livedepth.settings import RenderSettings, Settings, StereoSettings


def build_colorizer(render: RenderSettings, stereo: StereoSettings | None = None) -> Colorizer:
    """The colorizer for a ``[render]`` section (and a ``[stereo]`` one for the 3D layouts)."""
    views = Stereo(**asdict(stereo)) if stereo is not None else None
    return Colorizer(colormap=render.colormap, layout=render.layout, alpha=render.alpha, normalize=render.normalize,
                     value_range=render.range, invert=render.invert, stereo=views)


def make_temporal(settings: Settings):
    """The temporal filter ``[render] temporal`` asks for (a new one per video), or None."""
    if settings.render.temporal != "on":
        return None
    return TemporalFilter()
