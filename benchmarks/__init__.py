"""Benchmarks: scripts that print figures (not tests). Run as `python -m benchmarks.<name> --help`."""
