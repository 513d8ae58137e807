"""Find, download, verify and load a model's checkpoint (any :class:`WeightsSource`).

Resolution order: ``--weights PATH``, ``$LIVEDEPTH_WEIGHTS``, the config's ``[weights] path``,
the cache (``$XDG_CACHE_HOME/livedepth``, default ``~/.cache/livedepth``) under the model's
file name, then a download from the model's official URL. Downloads are atomic and record
their SHA-256 in a sidecar that every later load checks; the official SHA-256, where the
model has one, checks downloaded and cached files. No code is ever fetched (no ``torch.hub``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from livedepth.core.errors import WeightsError
from livedepth.core.files import cache_dir, create_temp
from livedepth.model.registry import WeightsSource

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".sha256"
#: The environment variable that replaces every model's download URL (a mirror).
ENV_URL = "LIVEDEPTH_WEIGHTS_URL"


@dataclass(frozen=True)
class WeightsSpec:
    """Where one model's weights may come from, as given by flags, environment and config."""

    source: WeightsSource
    path: Path | None = None
    origin: str = "cache"
    sha256: str | None = None  # pinned by the config
    url: str = ""  # the download URL: the config's, $LIVEDEPTH_WEIGHTS_URL, else the source's

    @property
    def cached(self) -> Path:
        """The model's file in the cache."""
        return cache_dir() / self.source.filename

    @property
    def expected_sha256(self) -> str | None:
        """The SHA-256 the file must have: the config's pin, else (for the cache and downloads,
        which hold the official file by name) the official one."""
        return self.sha256 or (self.source.sha256 if self.path is None else None)


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file on disk and how it was found."""

    path: Path
    origin: str


def weights_spec(source: WeightsSource, flag: str | Path | None = None,
                 config: Mapping[str, object] | None = None) -> WeightsSpec:
    """Combine ``--weights``, ``$LIVEDEPTH_WEIGHTS`` and the config's ``[weights]`` table for a model."""
    config = config or {}
    sha = config.get("sha256")
    url = str(config.get("url") or os.environ.get(ENV_URL) or source.url)
    common = {"sha256": str(sha).lower() if sha else None, "url": url}
    if flag:
        return WeightsSpec(source, Path(flag).expanduser(), "--weights", **common)
    if os.environ.get("LIVEDEPTH_WEIGHTS"):
        return WeightsSpec(source, Path(os.environ["LIVEDEPTH_WEIGHTS"]).expanduser(), "LIVEDEPTH_WEIGHTS", **common)
    if config.get("path"):
        return WeightsSpec(source, Path(str(config["path"])).expanduser(), "config", **common)
    return WeightsSpec(source, None, "cache", **common)


def _missing_hint(filename: str) -> str:
    return f"put {filename} in {cache_dir()}, pass --weights PATH, or set LIVEDEPTH_WEIGHTS"


def resolve(spec: WeightsSpec, allow_download: bool = True) -> ResolvedWeights:
    """Return the weights file for ``spec``, downloading it into the cache if needed."""
    if spec.path is not None:
        if not spec.path.is_file():
            raise WeightsError(f"weights file not found: {spec.path} (from {spec.origin})")
        return ResolvedWeights(spec.path, spec.origin)
    if spec.cached.is_file():
        return ResolvedWeights(spec.cached, "cache")
    if not allow_download:
        raise WeightsError(f"no weights in the cache: {_missing_hint(spec.source.filename)}")
    download(spec.url, spec.cached, spec.expected_sha256, spec.source.size_bytes)
    return ResolvedWeights(spec.cached, "download")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(path: Path) -> Path:
    """The file that records ``path``'s SHA-256 after a download."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


def download(url: str, dest: Path, expected_sha256: str | None = None, size_bytes: int | None = None) -> str:
    """Download ``url`` to ``dest`` atomically with a progress bar; return its SHA-256.

    The data goes to a temporary file in the destination folder, is checked against
    ``expected_sha256`` when given, and only then renamed into place; the sidecar follows.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", url, dest)
    fd, tmp = create_temp(dest)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or size_bytes
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        sha = digest.hexdigest()
        if expected_sha256 and sha != expected_sha256:
            raise WeightsError(f"downloaded weights have SHA-256 {sha}, expected {expected_sha256}")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WeightsError(f"could not download weights from {url} ({reason}); {_missing_hint(dest.name)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    sidecar_path(dest).write_text(f"{sha}  {dest.name}\n")
    return sha


def verify(path: Path, expected_sha256: str | None = None) -> str:
    """Check ``path`` against its sidecar and a pinned SHA-256; return its SHA-256."""
    sha = file_sha256(path)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        recorded = sidecar.read_text().split()[0].lower()
        if recorded != sha:
            raise WeightsError(
                f"weights {path} changed since download: SHA-256 {sha}, sidecar says {recorded}; "
                f"delete both files to download again"
            )
    if expected_sha256 and sha != expected_sha256.lower():
        raise WeightsError(f"weights {path} have SHA-256 {sha}, expected {expected_sha256}")
    return sha


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` of a plain state dict, with one-line errors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsError(f"cannot read weights {path}: not a PyTorch checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights {path} are not a plain state dict of tensors")
    return dict(state)


def check_schema(model: nn.Module, state: dict[str, torch.Tensor], source: str,
                 model_name: str = "the model") -> dict[str, torch.Tensor]:
    """Match ``state`` to ``model``'s keys and shapes, naming the first mismatch.

    Missing ``num_batches_tracked`` buffers are filled with zeros, as BatchNorm does for
    checkpoints that lack them.
    """
    expected = model.state_dict()
    state = dict(state)
    unfit = f"weights {source} do not fit {model_name}"
    if not set(state) & set(expected):
        raise WeightsError(f"{unfit}: none of its {len(state)} keys is one of the model's {len(expected)} "
                           f"(another model's checkpoint? `livedepth models` lists them)")
    for key, ref in expected.items():
        if key not in state and key.endswith(".num_batches_tracked"):
            state[key] = torch.zeros_like(ref)
        if key not in state:
            raise WeightsError(f"{unfit}: missing key {key}")
        if tuple(state[key].shape) != tuple(ref.shape):
            raise WeightsError(f"{unfit}: {key} has shape {tuple(state[key].shape)}, expected {tuple(ref.shape)}")
    for key in state:
        if key not in expected:
            raise WeightsError(f"{unfit}: unexpected key {key}")
    return state


def load_state_dict_into(model: nn.Module, path: Path, expected_sha256: str | None = None, *,
                         adapt: Callable[[dict], dict] | None = None, model_name: str = "the model") -> str:
    """Verify and read a checkpoint, map it to ``model``'s keys with ``adapt`` (a model's
    ``adapt_state_dict``) and load it strictly; a checkpoint that does not fit is one line
    naming the mismatch. Returns the file's SHA-256."""
    sha = verify(path, expected_sha256)
    state = read_state_dict(path)
    try:
        state = adapt(state) if adapt is not None else state
    except Exception as exc:  # noqa: BLE001 - a foreign checkpoint can break an adapter in many ways
        raise WeightsError(f"weights {path} do not fit {model_name}: {type(exc).__name__}: {exc}") from None
    state = check_schema(model, state, str(path), model_name)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"weights {path} do not fit {model_name}: {str(exc).splitlines()[0]}") from None
    return sha


def describe(spec: WeightsSpec) -> str:
    """One line: which weights file ``spec`` names and whether it is there."""
    if spec.path is not None:
        return f"{spec.path} (from {spec.origin}, {'present' if spec.path.is_file() else 'MISSING'})"
    state = "cached" if spec.cached.is_file() else f"not cached; `livedepth weights fetch` downloads {spec.url}"
    return f"{spec.cached} ({state})"
