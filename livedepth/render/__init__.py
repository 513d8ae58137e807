"""Depth to pixels and over time: colormaps, normalisation, alignment, the temporal filter, metrics."""
