"""The log reader at its former path: ``LogReader(recorder)``. The readers live in ``ledger/adapters/``
(``log.py`` for SQLite and PostgreSQL, ``memory.py``); this name stays for the projections."""

from __future__ import annotations

from typing import Any

from ledger.adapters import EventLog, log_reader


def LogReader(recorder: Any) -> EventLog:  # named like the class it replaces
    """The log reader of the application's recorder."""
    return log_reader(recorder)
