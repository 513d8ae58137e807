"""CLI logging: the ``livedepth`` logger only (never the root logger), written through tqdm."""

from __future__ import annotations

import logging
import warnings

from livedepth.cli import setup_logging


def test_logging_leaves_the_root_logger_alone_and_goes_through_tqdm(capsys, monkeypatch):
    from tqdm import tqdm

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    written = []
    real_write = tqdm.write
    monkeypatch.setattr(tqdm, "write", classmethod(lambda cls, s, **kw: (written.append(s), real_write(s, **kw))))
    try:
        setup_logging()
        logging.getLogger("livedepth.run.convert").info("hello %d", 1)
        logging.getLogger("somebody.else").warning("not ours")
        warnings.warn("a library warning", UserWarning, stacklevel=1)
    finally:
        logging.captureWarnings(False)
        for name in ("livedepth", "py.warnings"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    assert (list(root.handlers), root.level) == before
    assert written[0] == "livedepth: hello 1"
    assert any("a library warning" in line for line in written)
    assert not any("not ours" in line for line in written)
    assert "livedepth: hello 1" in capsys.readouterr().err
