"""Persistence adapters, one module per backend: ``sqlite``, ``postgres`` and ``memory`` (each with its
event recorder, hash-chain rows and log reader; the key stores are in ``ledger.keys.stores``), ``log``
(the SQL reads both databases share) and ``group_commit`` (many commands' events in one transaction).
Each backend's recorder says what it is (``LedgerRecorder``: its log reader, proof store and snapshot
ids); this module only asks it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast
from uuid import UUID

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventsourcing.persistence import StoredEvent

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

    def first_events(self, topic: str) -> Iterator[tuple[int, UUID]]:
        """(position, stream id) of every stream's first event stored under ``topic``, in position order."""


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


class LedgerRecorder(Protocol):
    """What each backend's event recorder says about itself (``ChainedSQLiteRecorder``,
    ``ChainedPostgresRecorder``, ``ChainedMemoryRecorder``): a new backend answers these four."""

    def log_reader(self) -> EventLog:
        """The position-aware reads over this recorder."""

    def proof_store(self) -> ProofStore | None:
        """The proof tables (tree, signed heads, stream map) beside the events; None where there are none."""

    def snapshot_ids(self, snapshots: Any) -> set[UUID]:
        """Ids of the streams that have a snapshot in ``snapshots``, the snapshots recorder of this store."""

    def batch_store(self) -> BatchStore:
        """Where the batch MACs and marks live (the proof tables on SQL, the recorder itself in memory)."""


_BACKEND_METHODS = ("log_reader", "proof_store", "snapshot_ids", "batch_store")


def ledger_recorder(recorder: object) -> LedgerRecorder:
    """The application's recorder as one of the ledger's backends; TypeError for any other recorder (the
    library's own recorders keep no hash chains)."""
    if not all(
        callable(getattr(recorder, name, None)) for name in ("log_reader", "proof_store", "snapshot_ids", "batch_store")
    ):
        raise TypeError(f"{type(recorder).__name__} is not a recorder of ledger.adapters (sqlite, postgres, memory)")
    return cast("LedgerRecorder", recorder)


def log_reader(recorder: object) -> EventLog:
    """The log reader for the application's recorder."""
    return ledger_recorder(recorder).log_reader()


def proof_store(recorder: object) -> ProofStore | None:
    """The proof tables (tree, signed heads, stream map) of the application's store; None in memory."""
    return ledger_recorder(recorder).proof_store()


def snapshot_ids(recorder: object, snapshots: Any) -> set[UUID]:
    """Ids of the streams that have a snapshot, read by the application's recorder from ``snapshots``."""
    return ledger_recorder(recorder).snapshot_ids(snapshots)


def batch_store(recorder: object) -> BatchStore:
    """Where the application's recorder keeps its batch MACs and marks."""
    return ledger_recorder(recorder).batch_store()


def open_read_only(store: StoreConfig) -> ReadOnly:
    """A read-only view of the ledger's log in ``store`` (SQLite file or PostgreSQL), without keys."""
    from ledger.adapters import postgres, sqlite

    if store.kind == "sqlite":
        if store.sqlite_path is None:
            raise ValueError("an SQLite store needs a file")
        return sqlite.ReadOnlyLog(store.sqlite_path)
    return postgres.ReadOnlyLog(store.conninfo())
