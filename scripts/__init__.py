"""Batch jobs and maintenance scripts, each runnable as ``python -m scripts.<name>``."""
