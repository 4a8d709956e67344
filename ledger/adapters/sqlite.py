"""The SQLite backend: the chained event recorder, the key store and log readers.

Positions are the events table's rowid. The key store (``ledger.keys.stores``) is a separate file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from ledger.adapters.log import LogReader
from ledger.integrity import CHAIN_TABLE, GENESIS, chain_rows
from ledger.keys.stores import SQLiteKeyStore

__all__ = ["ChainedSQLiteRecorder", "ReadOnlyLog", "SQLiteKeyStore", "recorder_reader"]


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """The library's SQLite recorder, plus both hash chains written with the events."""

    def construct_create_table_statements(self) -> list[str]:
        """The events table and the chain table."""
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (position INTEGER PRIMARY KEY, "
            "stream_hash BLOB NOT NULL, chain_hash BLOB NOT NULL)",
        ]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        positions = super()._insert_events(c, stored_events, **kwargs) or []
        c.execute(f"SELECT position, chain_hash FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1")
        row = c.fetchone()
        previous_chain = bytes(row[1]) if row else GENESIS
        rows = chain_rows(stored_events, positions, previous_chain, lambda sid, v: self._stream_head(c, sid, v))
        c.executemany(f"INSERT INTO {CHAIN_TABLE} VALUES (?, ?, ?)", rows)
        return positions

    def _stream_head(self, c: SQLiteCursor, stream_id: UUID | str, version: int) -> bytes:
        sid = stream_id.hex if isinstance(stream_id, UUID) else stream_id
        c.execute(
            f"SELECT h.stream_hash FROM {self.events_table_name} e JOIN {CHAIN_TABLE} h ON h.position = e.rowid "
            "WHERE e.originator_id = ? AND e.originator_version = ?",
            (sid, version),
        )
        row = c.fetchone()
        return bytes(row[0]) if row else GENESIS


def recorder_reader(recorder: SQLiteApplicationRecorder) -> LogReader:
    """A log reader over the application's own recorder (its connection pool)."""

    def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [tuple(r) for r in c.fetchall()]

    def max_position() -> int:
        return recorder.max_notification_id() or 0

    return LogReader(
        query, postgres=False, events=recorder.events_table_name, chain=CHAIN_TABLE, max_position=max_position
    )


class ReadOnlyLog:
    """A read-only connection to an SQLite ledger file, in one read transaction (one consistent view)
    for as long as it is open; ``reader`` reads it."""

    def __init__(self, path: Path, events_table: str = "stored_events") -> None:
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        self._conn.execute("BEGIN")
        self.reader = LogReader(self._query, postgres=False, events=events_table, chain=CHAIN_TABLE)

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]

    def close(self) -> None:
        """End the read transaction and close the file."""
        self._conn.close()
