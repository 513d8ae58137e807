"""``scripts/bootstrap.sh`` (what ``run.sh`` and ``test.sh`` start with) shows its progress.

The real script runs from a copy of the repository's layout whose project is tiny: it has its
own PEP 517 backend (no build requirement) and one dependency, a wheel served over HTTP on
127.0.0.1 (pip runs with ``--no-index`` and that page as ``--find-links``). So pip really
creates a venv, downloads and installs, offline, in seconds, and the shared venv is never touched.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pty
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support.cli_helpers import ROOT

pytestmark = pytest.mark.slow  # integration: see the README's fast lane

BACKEND = '''
"""A PEP 517 backend that writes one small wheel: its metadata and an empty .pth file."""
import base64, hashlib, os, zipfile


def wheel(directory, name="tinyapp", version="0.1", requires=("tinydep",)):
    dist = f"{name}-{version}"
    metadata = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\nProvides-Extra: fast\\n"
    files = {
        f"{dist}.dist-info/METADATA": metadata + "".join(f"Requires-Dist: {r}\\n" for r in requires),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\n"
                                   "Tag: py3-none-any\\n",
        f"{name}.pth": "\\n",
    }
    filename = f"{dist}-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as whl:
        for path, text in files.items():
            data = text.encode()
            whl.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{path},sha256={digest},{len(data)}\\n")
        whl.writestr(f"{dist}.dist-info/RECORD", "".join(records) + f"{dist}.dist-info/RECORD,,\\n")
    return filename


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return wheel(wheel_directory)


build_editable = build_wheel
'''

PYPROJECT = """
[build-system]
requires = []
build-backend = "tinybackend"
backend-path = ["."]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository layout with the real bootstrap script and a tiny project."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", root / "scripts")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "constraints.txt").write_text("")
    (root / "tinybackend.py").write_text(BACKEND)
    return root


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def wheel_page(tmp_path: Path) -> Iterator[str]:
    """The address of a folder holding the ``tinydep`` wheel, served on 127.0.0.1."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    backend_file = tmp_path / "backend.py"
    backend_file.write_text(BACKEND)
    spec = importlib.util.spec_from_file_location("tinybackend", backend_file)
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    backend.wheel(folder, "tinydep", "1.0", requires=())
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def bootstrap_env(venv: Path, find_links: str) -> dict[str, str]:
    return {**os.environ, "LIVEDEPTH_VENV": str(venv), "LIVEDEPTH_SYSTEM_SITE_PACKAGES": "0",
            "PYTHON": sys.executable, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": find_links, "PIP_NO_CACHE_DIR": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CONFIG_FILE": os.devnull}


def bootstrap(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Source the script as run.sh does, its output not a terminal."""
    return subprocess.run(["bash", "-c", 'source "$0/scripts/bootstrap.sh" fast', str(project)], env=env,
                          capture_output=True, text=True, timeout=600)


def test_without_a_terminal_each_phase_and_download_is_a_line(project: Path, wheel_page: str, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = bootstrap_env(venv, wheel_page)
    proc = bootstrap(project, env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    log = venv / "bootstrap.log"
    assert lines[:4] == [
        f"bootstrap: creating {venv}",
        f"bootstrap: installing livedepth[fast] into {venv} (first run only; pip's log: {log})",
        "bootstrap: upgrading pip",
        "bootstrap: installing livedepth[fast] and its dependencies (torch, OpenCV, ...)",
    ], proc.stderr
    assert re.fullmatch(r"bootstrap:   downloading tinydep-1\.0-py3-none-any\.whl \(.+\)", lines[4]), proc.stderr
    assert lines[5] == "bootstrap:   installing 2 packages"
    assert re.fullmatch(r"bootstrap: done in \d+ s", lines[6]) and len(lines) == 7, proc.stderr
    assert "Successfully installed tinyapp-0.1 tinydep-1.0" in log.read_text()  # pip's own output, in the log
    version = "import importlib.metadata as m; print(m.version('tinydep'))"
    check = subprocess.run([venv / "bin" / "python", "-c", version], capture_output=True, text=True)
    assert check.stdout.strip() == "1.0", check.stderr

    again = bootstrap(project, env)
    assert again.returncode == 0 and again.stderr == "", "installed once: the next start is silent"


def test_a_failed_install_shows_the_log_tail(project: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    proc = bootstrap(project, bootstrap_env(venv, str(tmp_path / "no-wheels-here")))
    assert proc.returncode == 1
    assert "No matching distribution found for tinydep" in proc.stderr
    assert proc.stderr.splitlines()[-1] == f"bootstrap: pip install failed; full log in {venv / 'bootstrap.log'}"


def test_on_a_terminal_pip_shows_its_own_output_and_logs_too(project: Path, wheel_page: str, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    main, secondary = pty.openpty()
    proc = subprocess.Popen(["bash", "-c", 'source "$0/scripts/bootstrap.sh" fast', str(project)],
                            env=bootstrap_env(venv, wheel_page), stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(600) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "bootstrap: upgrading pip" in screen and re.search(r"bootstrap: done in \d+ s", screen), screen
    assert "Successfully installed tinyapp-0.1 tinydep-1.0" in screen, "pip's own output on the terminal"
    assert "bootstrap:   downloading" not in screen, "no summary lines: pip shows its own progress"
    assert "Successfully installed tinyapp-0.1 tinydep-1.0" in (venv / "bootstrap.log").read_text()
