"""Benchmarks: `python -m benchmarks`. Never part of the tests; they print, they do not assert."""
