"""Helpers of ``generate_dataset`` (not a job of their own): deterministic synthetic identifiers and number
histories. They ship with the scripts because the operator-facing ``generate_dataset`` needs them; the
benchmarks in ``bench/`` use them too."""
