"""Benchmarks and dataset tools for them; run from a checkout (not part of the wheel)."""
