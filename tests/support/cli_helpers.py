"""Run the real ``livedepth`` CLI in a subprocess, and check the one-line errors of bad flags and configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.golden import TEST_IMAGE

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m livedepth ARGS`` with the test's environment (isolated cache, no network)."""
    return subprocess.run(
        [sys.executable, "-m", "livedepth", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m livedepth ARGS`` started in the background, its output piped as text (for tests that
    signal or watch it); ``env`` is its whole environment (default: this process's)."""
    return subprocess.Popen([sys.executable, "-m", "livedepth", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    """Exit code 2, one ``livedepth: error:`` line containing ``fragment``, no traceback."""
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("livedepth: error:")]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def assert_image_flags_refused(folder: Path, flags: list[str], fragment: str) -> None:
    """``livedepth image`` with bad ``flags`` is one line (see :func:`assert_one_line_error`) and
    writes nothing in ``folder``."""
    assert_one_line_error(run_cli("image", str(TEST_IMAGE), str(folder / "o.png"), *flags), fragment)
    assert list(folder.iterdir()) == []


def assert_config_refused(folder: Path, toml: str, fragment: str) -> None:
    """A config file holding ``toml`` is refused with one line naming the file and ``fragment``."""
    from livedepth.core.errors import LivedepthError
    from livedepth.settings import load_settings

    config = folder / "bad.toml"
    config.write_text(toml)
    try:
        load_settings(config)
    except LivedepthError as exc:
        assert fragment in str(exc) and "\n" not in str(exc) and str(config) in str(exc), exc
    else:
        raise AssertionError(f"{toml!r} was accepted")
