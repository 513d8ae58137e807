"""Weights: resolution order, download, SHA-256 checks and clear errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from livedepth.model import weights as w
from livedepth.core.errors import WeightsError
from livedepth.model.midas import WEIGHTS, build_model
from livedepth.model.network import load_network

FILENAME = WEIGHTS.filename


class _FileServer:
    """Serves one byte string on 127.0.0.1 and counts the requests."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.payload)))
                self.end_headers()
                self.wfile.write(outer.payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/midas_v21_small_256.pt"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def file_server(weights_pt: Path) -> Iterator[_FileServer]:
    server = _FileServer(weights_pt.read_bytes())
    yield server
    server.close()


def test_download_is_atomic_writes_sidecar_and_is_cached(file_server, isolated_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIVEDEPTH_WEIGHTS_URL", file_server.url)
    spec = w.weights_spec(WEIGHTS)
    first = w.resolve(spec)
    assert first.origin == "download" and first.path == isolated_cache / FILENAME
    assert sorted(p.name for p in isolated_cache.iterdir()) == [FILENAME, FILENAME + ".sha256"]
    sha = w.file_sha256(first.path)
    assert w.sidecar_path(first.path).read_text().split()[0] == sha
    second = w.resolve(spec)
    assert second.origin == "cache" and file_server.requests == 1
    assert w.load_state_dict_into(build_model(), second.path) == sha


def test_download_with_wrong_pinned_sha_leaves_nothing(file_server, isolated_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIVEDEPTH_WEIGHTS_URL", file_server.url)
    with pytest.raises(WeightsError, match="expected 00"):
        w.resolve(w.weights_spec(WEIGHTS, config={"sha256": "00" * 32}))
    assert list(isolated_cache.iterdir()) == []


def test_offline_without_weights_says_where_to_put_them(isolated_cache: Path) -> None:
    with pytest.raises(WeightsError) as err:
        w.resolve(w.weights_spec(WEIGHTS))
    message = str(err.value)
    assert "\n" not in message and "--weights" in message and str(isolated_cache) in message


def test_resolution_order(tmp_path: Path, weights_pt: Path, isolated_cache: Path, monkeypatch) -> None:
    isolated_cache.mkdir(parents=True)
    (isolated_cache / FILENAME).write_bytes(weights_pt.read_bytes())
    env_file, cfg_file, flag_file = (tmp_path / n for n in ("env.pt", "cfg.pt", "flag.pt"))
    cfg = {"path": str(cfg_file)}
    assert w.resolve(w.weights_spec(WEIGHTS)).origin == "cache"
    with pytest.raises(WeightsError, match="cfg.pt"):
        w.resolve(w.weights_spec(WEIGHTS, config=cfg))
    monkeypatch.setenv("LIVEDEPTH_WEIGHTS", str(env_file))
    with pytest.raises(WeightsError, match="env.pt"):
        w.resolve(w.weights_spec(WEIGHTS, config=cfg))
    with pytest.raises(WeightsError, match="flag.pt"):
        w.resolve(w.weights_spec(WEIGHTS, flag_file, config=cfg))
    flag_file.write_bytes(b"x")
    assert w.resolve(w.weights_spec(WEIGHTS, flag_file, config=cfg)) == w.ResolvedWeights(flag_file, "--weights")


def test_corrupted_file_gives_clear_error(tmp_path: Path, weights_pt: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(weights_pt.read_bytes()[: 100_000])
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        load_network("midas-small", bad)


def test_wrong_key_is_named(tmp_path: Path, synthetic_state) -> None:
    state = dict(synthetic_state)
    state["scratch.layer2_rn.weightt"] = state.pop("scratch.layer2_rn.weight")
    path = tmp_path / "renamed.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="missing key scratch.layer2_rn.weight$"):
        load_network("midas-small", path)


def test_wrong_shape_is_named(tmp_path: Path, synthetic_state) -> None:
    state = dict(synthetic_state)
    state["scratch.output_conv.4.bias"] = torch.zeros(2)
    path = tmp_path / "shape.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"scratch.output_conv.4.bias has shape \(2,\)"):
        load_network("midas-small", path)


def test_extra_key_is_named(tmp_path: Path, synthetic_state) -> None:
    path = tmp_path / "extra.pt"
    torch.save({**synthetic_state, "head.extra": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="unexpected key head.extra"):
        load_network("midas-small", path)


def test_pinned_sha_mismatch(weights_pt: Path) -> None:
    with pytest.raises(WeightsError, match="expected ab"):
        w.load_state_dict_into(build_model(), weights_pt, "ab" * 32)
    assert w.load_state_dict_into(build_model(), weights_pt, w.file_sha256(weights_pt))


def test_sidecar_mismatch_after_tampering(tmp_path: Path, weights_pt: Path) -> None:
    path = tmp_path / FILENAME
    path.write_bytes(weights_pt.read_bytes())
    w.sidecar_path(path).write_text("ff" * 32 + "  x\n")
    with pytest.raises(WeightsError, match="changed since download"):
        w.verify(path)


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"obj": _FileServer}, path)
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        load_network("midas-small", path)
