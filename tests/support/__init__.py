"""Helpers the tests and benchmarks share: clips, golden fixtures, CLI runs, live sources, Ray namespaces."""
