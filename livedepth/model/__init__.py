"""The MiDaS v2.1 small network and its weights."""
