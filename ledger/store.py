"""Reads of the event log that the library does not offer: several streams at once, with positions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.chain import CHAIN_TABLE, ChainedEvent

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventsourcing.persistence import ApplicationRecorder


@dataclass(frozen=True)
class PositionedEvent:
    """A stored event with its global position (notification id)."""

    position: int
    stored: StoredEvent


class LogReader:
    """Position-aware reads over the application's events table."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        if not isinstance(recorder, SQLiteApplicationRecorder):
            raise TypeError(f"unsupported recorder {type(recorder).__name__}")
        self.recorder = recorder
        self.table = recorder.events_table_name

    def read_streams(self, stream_ids: Sequence[UUID]) -> list[PositionedEvent]:
        """Every event of the given streams, in ledger order."""
        if not stream_ids:
            return []
        marks = ",".join("?" * len(stream_ids))
        sql = (
            f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.table} "
            f"WHERE originator_id IN ({marks}) ORDER BY rowid"
        )
        with self.recorder.datastore.transaction(commit=False) as c:
            c.execute(sql, [s.hex for s in stream_ids])
            rows = c.fetchall()
        return [
            PositionedEvent(
                position=row[0],
                stored=StoredEvent(originator_id=UUID(row[1]), originator_version=row[2], topic=row[3], state=row[4]),
            )
            for row in rows
        ]

    def position_of(self, stream_id: UUID, version: int) -> int | None:
        """The position of one event, or None if it is not stored."""
        sql = f"SELECT rowid FROM {self.table} WHERE originator_id = ? AND originator_version = ?"
        with self.recorder.datastore.transaction(commit=False) as c:
            c.execute(sql, [stream_id.hex, version])
            row = c.fetchone()
        return None if row is None else int(row[0])

    def max_position(self) -> int:
        """The position of the latest event, 0 when the ledger is empty."""
        return self.recorder.max_notification_id() or 0

    def chained(self, batch: int = 5000) -> Iterator[ChainedEvent]:
        """Every event in position order with its recorded hashes, read in batches."""
        after = 0
        sql = (
            f"SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state, h.stream_hash, h.chain_hash "
            f"FROM {self.table} e LEFT JOIN {CHAIN_TABLE} h ON h.position = e.rowid WHERE e.rowid > ? "
            "ORDER BY e.rowid LIMIT ?"
        )
        while True:
            with self.recorder.datastore.transaction(commit=False) as c:
                c.execute(sql, [after, batch])
                rows = c.fetchall()
            if not rows:
                return
            for row in rows:
                yield _chained(row)
            after = rows[-1][0]

    def chained_streams(self, stream_ids: Sequence[UUID]) -> list[ChainedEvent]:
        """Every event of some streams in position order, with their recorded hashes."""
        marks = ",".join("?" * len(stream_ids))
        sql = (
            f"SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state, h.stream_hash, h.chain_hash "
            f"FROM {self.table} e LEFT JOIN {CHAIN_TABLE} h ON h.position = e.rowid "
            f"WHERE e.originator_id IN ({marks}) ORDER BY e.rowid"
        )
        with self.recorder.datastore.transaction(commit=False) as c:
            c.execute(sql, [s.hex for s in stream_ids])
            return [_chained(row) for row in c.fetchall()]


def _chained(row: Sequence[object]) -> ChainedEvent:
    return ChainedEvent(
        position=int(row[0]),  # type: ignore[call-overload]
        stream_id=str(row[1]),
        version=int(row[2]),  # type: ignore[call-overload]
        topic=str(row[3]),
        state=bytes(row[4]),  # type: ignore[call-overload]
        stream_hash=bytes(row[5]) if row[5] is not None else None,  # type: ignore[call-overload]
        chain_hash=bytes(row[6]) if row[6] is not None else None,  # type: ignore[call-overload]
    )
