"""Helpers of ``recycling_check`` (not a job of their own): the input's rows in batches (``rows``) and the
answer's columns as CSV or JSON lines (``columns``)."""
