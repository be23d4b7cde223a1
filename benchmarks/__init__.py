"""Benchmarks of pdr (run as ``python -m benchmarks.<module>``; see the README)."""
