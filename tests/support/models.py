"""Run the CLI tests for every built-in model: the flags that pick one, cheaply."""

from __future__ import annotations

from pathlib import Path

#: The built-in models, for ``pytest.mark.parametrize("model", MODELS)``.
MODELS = ("midas-small", "depth-anything-v2-small")
#: A small ``--size`` per model (None: the model's default), so a test stays cheap.
CHEAP_SIZE = {"midas-small": None, "depth-anything-v2-small": 56}


def model_flags(model: str, weights: Path, size: int | None = None) -> tuple[str, ...]:
    """``--model NAME --weights PATH`` and, where the model has one, its cheap ``--size`` (else
    ``size``, when given)."""
    size = CHEAP_SIZE[model] or size
    return ("--model", model, "--weights", str(weights), *(("--size", str(size)) if size else ()))
