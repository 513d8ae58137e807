"""livedepth: real-time MiDaS v2.1 small depth on a plain CPU."""

from __future__ import annotations

__version__ = "0.1.0"
