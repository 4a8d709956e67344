"""Persistence adapters, one module per backend: ``sqlite``, ``postgres`` and ``memory`` (each with its
event recorder and hash-chain rows, key store and log reader), ``log`` (the SQL reads both databases
share) and ``group_commit`` (many commands' events in one transaction). This module picks the adapter
that serves a recorder or a store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventsourcing.persistence import Recorder, StoredEvent

    from ledger.adapters.log import PositionedEvent
    from ledger.config import StoreConfig
    from ledger.integrity import ChainedEvent
    from ledger.proofs.batches import BatchStore
    from ledger.proofs.store import ProofStore


class EventLog(Protocol):
    """The position-aware reads the application makes (``LogReader`` on SQL, ``MemoryLogReader``)."""

    def read_streams(self, stream_ids: Sequence[UUID]) -> list[PositionedEvent]:
        """Every event of the given streams, in ledger order."""

    def stream_events(self, stream_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of several streams, in version order."""

    def existing(self, stream_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these streams have any event."""

    def position_of(self, stream_id: UUID, version: int) -> int | None:
        """The position of one event, or None if it is not stored."""

    def max_position(self) -> int:
        """The position of the latest event, 0 when the ledger is empty."""

    def chained(self, after: int = 0, batch: int = 5000) -> Iterator[ChainedEvent]:
        """Every event (after position ``after``) in position order with its recorded hashes, read
        ``batch`` at a time."""

    def chained_streams(self, stream_ids: Sequence[UUID]) -> list[ChainedEvent]:
        """Every event of some streams in position order, with their recorded hashes."""

    def chain_hashes(self, positions: Sequence[int]) -> dict[int, bytes]:
        """The recorded chain hashes at these positions (absent where no chain row exists)."""


class ReadOnly(Protocol):
    """A read-only, consistent view of a ledger's log, for offline tools."""

    @property
    def reader(self) -> Any:
        """The ``LogReader`` over the view."""

    @property
    def proofs(self) -> Any:
        """The ``ProofStore`` over the view (read-only)."""

    def close(self) -> None:
        """Release the connection."""


def log_reader(recorder: Any) -> EventLog:
    """The log reader for the application's recorder."""
    from eventsourcing.postgres import PostgresApplicationRecorder
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    from ledger.adapters import memory, postgres, sqlite

    if isinstance(recorder, SQLiteApplicationRecorder):
        return sqlite.recorder_reader(recorder)
    if isinstance(recorder, PostgresApplicationRecorder):
        return postgres.recorder_reader(recorder)
    if isinstance(recorder, memory.ChainedMemoryRecorder):
        return memory.MemoryLogReader(recorder)
    raise TypeError(f"unsupported recorder {type(recorder).__name__}")


def proof_store(recorder: Any) -> ProofStore | None:
    """The proof tables (tree, signed heads, stream map) of the application's store; None in memory."""
    from eventsourcing.postgres import PostgresApplicationRecorder
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    from ledger.proofs.store import ProofStore

    postgres = isinstance(recorder, PostgresApplicationRecorder)
    if not postgres and not isinstance(recorder, SQLiteApplicationRecorder):
        return None

    def rows(r: Any) -> tuple[Any, ...]:
        return tuple(r.values()) if isinstance(r, dict) else tuple(r)

    def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [rows(r) for r in c.fetchall()]

    def write(statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        with recorder.datastore.transaction(commit=True) as c:
            for sql, values in statements:
                if values:
                    c.executemany(sql, values)

    prefix = f'"{recorder.datastore.schema}".' if postgres else ""
    return ProofStore(query, write, postgres=postgres, prefix=prefix)


def batch_store(recorder: Any) -> BatchStore:
    """Where the recorder keeps its batch MACs and marks (the proof tables on SQL, the recorder in memory)."""
    from ledger.adapters.memory import ChainedMemoryRecorder

    if isinstance(recorder, ChainedMemoryRecorder):
        return recorder
    store = proof_store(recorder)
    if store is None:
        raise TypeError(f"unsupported recorder {type(recorder).__name__}")
    return store


def open_read_only(store: StoreConfig) -> ReadOnly:
    """A read-only view of the ledger's log in ``store`` (SQLite file or PostgreSQL), without keys."""
    from ledger.adapters import postgres, sqlite

    if store.kind == "sqlite":
        if store.sqlite_path is None:
            raise ValueError("an SQLite store needs a file")
        return sqlite.ReadOnlyLog(store.sqlite_path)
    return postgres.ReadOnlyLog(store.conninfo())


def snapshot_ids(recorder: Recorder) -> set[UUID]:
    """Ids of the streams that have a snapshot, read from the snapshots table (or list)."""
    from ledger.adapters.memory import stored_ids

    found = stored_ids(recorder)
    if found is not None:
        return found
    rec: Any = recorder
    table = rec.events_table_name
    if hasattr(rec.datastore, "schema"):
        table = f'"{rec.datastore.schema}"."{table}"'
    with rec.datastore.transaction(commit=False) as c:
        c.execute(f"SELECT DISTINCT originator_id FROM {table}")
        rows = c.fetchall()
    ids = [r["originator_id"] if isinstance(r, dict) else r[0] for r in rows]
    return {i if isinstance(i, UUID) else UUID(i) for i in ids}
