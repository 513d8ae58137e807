"""User-facing errors: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class LivedepthError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class WeightsError(LivedepthError):
    """Model weights are missing, unreadable, or do not match the model."""
