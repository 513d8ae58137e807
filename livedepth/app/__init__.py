"""Builders: settings in, ready objects out (the one place where settings become objects)."""
