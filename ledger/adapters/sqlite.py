"""The SQLite backend: the chained event recorder and log readers.

Positions are the events table's rowid. The key store (``ledger.keys.stores.SQLiteKeyStore``) is a
separate file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from ledger.adapters.log import LogReader, sql_proof_store, sql_stream_ids
from ledger.integrity import CHAIN_TABLE, GENESIS, chain_rows
from ledger.proofs.batches import BatchWriter
from ledger.proofs.log_tree import TREE_TABLE, Frontier, TreeAppender
from ledger.proofs.store import ProofStore, sqlite_proof_tables

__all__ = ["ChainedSQLiteRecorder", "ReadOnlyLog", "recorder_reader"]

# Per thread: the frontier an insert computed, kept until its transaction committed.
_pending = threading.local()


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """The library's SQLite recorder, plus both hash chains and the Merkle tree written with the events."""

    merkle_tree = True
    _frontier: Frontier | None = None  # the tree's frontier after the last committed insert

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_writer = BatchWriter()

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Insert the events with their chain rows, tree nodes and batch MAC, in one transaction."""
        pending = _pending_frontiers()
        pending.pop(id(self), None)
        with self.datastore.transaction(commit=True) as c:
            positions = self._insert_events(c, stored_events, **kwargs)
        if id(self) in pending:  # committed: the next insert may start from it (one read less)
            self._frontier = pending.pop(id(self))
        if positions:
            self.batch_writer.end = positions[-1]
        return positions

    def log_reader(self) -> LogReader:
        """The log reader over this recorder's connection pool."""
        return recorder_reader(self)

    def proof_store(self) -> ProofStore:
        """The proof tables (tree, signed heads, stream map) beside the events."""
        return sql_proof_store(self.datastore, tuple, postgres=False)

    def batch_store(self) -> ProofStore:
        """The proof tables, which hold the batch MACs and marks too."""
        return self.proof_store()

    def snapshot_ids(self, snapshots: Any) -> set[UUID]:
        """Ids of the streams that have a snapshot in the snapshots recorder of this store."""
        return sql_stream_ids(snapshots.datastore, snapshots.events_table_name, tuple)

    def construct_create_table_statements(self) -> list[str]:
        """The events table, the chain table and the proof tables (tree, signed heads, stream map)."""
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (position INTEGER PRIMARY KEY, "
            "stream_hash BLOB NOT NULL, chain_hash BLOB NOT NULL)",
            *sqlite_proof_tables(),
        ]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        positions = super()._insert_events(c, stored_events, **kwargs) or []
        if self.merkle_tree:  # first: over events removed from the log it refuses, rather than conflicts
            _pending_frontiers()[id(self)] = self._tree(c).append(stored_events, positions, self._frontier)
        c.execute(f"SELECT position, chain_hash FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1")
        row = c.fetchone()
        previous_chain = bytes(row[1]) if row else GENESIS
        rows = chain_rows(stored_events, positions, previous_chain, lambda sid, v: self._stream_head(c, sid, v))
        c.executemany(f"INSERT INTO {CHAIN_TABLE} VALUES (?, ?, ?)", rows)
        if positions:
            c.execute(
                self.batch_writer.insert_sql(),
                self.batch_writer.seal(lambda q, p: _fetch(c, q, p), stored_events, positions),
            )
        return positions

    def _tree(self, c: SQLiteCursor) -> TreeAppender:
        return TreeAppender(
            lambda sql, params: _fetch(c, sql, params),
            table=TREE_TABLE,
            events=self.events_table_name,
            position="rowid",
            mark="?",
            insert=lambda nodes: c.executemany(f"INSERT INTO {TREE_TABLE} VALUES (?, ?)", nodes),
            feed=lambda: self.batch_writer.catch_up_feed(lambda sql, params: _fetch(c, sql, params)),
        )

    def catch_up_tree(self) -> int:
        """Append the tree's missing leaves now (``ledger migrate``); returns how many."""
        with self.datastore.transaction(commit=True) as c:
            end = _fetch(c, f"SELECT MAX(rowid) FROM {self.events_table_name}", [])[0][0]
            return self._tree(c).catch_up(int(end or 0))

    def _stream_head(self, c: SQLiteCursor, stream_id: UUID | str, version: int) -> bytes:
        sid = stream_id.hex if isinstance(stream_id, UUID) else stream_id
        c.execute(
            f"SELECT h.stream_hash FROM {self.events_table_name} e JOIN {CHAIN_TABLE} h ON h.position = e.rowid "
            "WHERE e.originator_id = ? AND e.originator_version = ?",
            (sid, version),
        )
        row = c.fetchone()
        return bytes(row[0]) if row else GENESIS


class UntreedSQLiteRecorder(ChainedSQLiteRecorder):
    """The chained recorder without the Merkle tree (``LEDGER_MERKLE_TREE=0``: to measure the tree's
    cost; the tree catches up at the next insert with it on)."""

    merkle_tree = False


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
        self.proofs = ProofStore(self._query, None, postgres=False)

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]

    def close(self) -> None:
        """End the read transaction and close the file."""
        self._conn.close()


def _pending_frontiers() -> dict[int, Frontier | None]:
    found: dict[int, Frontier | None] | None = getattr(_pending, "frontiers", None)
    if found is None:
        found = _pending.frontiers = {}
    return found


def _fetch(c: SQLiteCursor, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    c.execute(sql, params)
    return [tuple(r) for r in c.fetchall()]
