"""Reads of the event log that the library does not offer: several streams at once, with positions and
the hash chains. The same SQL serves SQLite (position = rowid) and PostgreSQL (position =
notification_id)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.chain import CHAIN_TABLE, ChainedEvent

if TYPE_CHECKING:
    from eventsourcing.persistence import ApplicationRecorder


@dataclass(frozen=True)
class PositionedEvent:
    """A stored event with its global position (notification id)."""

    position: int
    stored: StoredEvent


class LogReader:
    """Position-aware reads over the application's events table."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder
        if isinstance(recorder, SQLiteApplicationRecorder):
            self.postgres = False
            self.events, self.chain, self.pos, self.mark = recorder.events_table_name, CHAIN_TABLE, "rowid", "?"
        elif isinstance(recorder, PostgresApplicationRecorder):
            self.postgres = True
            schema = recorder.datastore.schema
            self.events = f'"{schema}"."{recorder.events_table_name}"'
            self.chain, self.pos, self.mark = f'"{schema}"."{CHAIN_TABLE}"', "notification_id", "%s"
        else:
            raise TypeError(f"unsupported recorder {type(recorder).__name__}")

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        sql = sql.replace("?", self.mark)
        with self.recorder.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute(sql, params)
            rows = c.fetchall()
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]

    def _id(self, stream_id: UUID) -> Any:
        return stream_id if self.postgres else stream_id.hex

    def _any(self, column: str, stream_ids: Sequence[UUID]) -> tuple[str, list[Any]]:
        # One array parameter on PostgreSQL: the statement text is the same for any number of streams, so
        # psycopg prepares it once (an IN list of each length was a new statement, and at most 100 are
        # kept prepared, so they were prepared and dropped over and over).
        if self.postgres:
            return f"{column} = ANY(?)", [list(stream_ids)]
        return f"{column} IN ({','.join('?' * len(stream_ids))})", [s.hex for s in stream_ids]

    # Reads of a few streams are ordered by the stream key (the primary key's order) and put in ledger
    # order here: ordered by position, a planner without statistics may walk the whole position index
    # instead of looking the streams up (seen on PostgreSQL at two million events).

    def read_streams(self, stream_ids: Sequence[UUID]) -> list[PositionedEvent]:
        """Every event of the given streams, in ledger order."""
        if not stream_ids:
            return []
        where, params = self._any("originator_id", stream_ids)
        rows = self._rows(
            f"SELECT {self.pos}, originator_id, originator_version, topic, state FROM {self.events} "
            f"WHERE {where} ORDER BY originator_id, originator_version",
            params,
        )
        rows.sort(key=_position)
        return [PositionedEvent(int(r[0]), StoredEvent(_uuid(r[1]), int(r[2]), str(r[3]), bytes(r[4]))) for r in rows]

    def stream_events(self, stream_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of several streams (in version order), read in one query; streams without
        events are absent from the result."""
        if not stream_ids:
            return {}
        where, params = self._any("originator_id", stream_ids)
        rows = self._rows(
            f"SELECT originator_id, originator_version, topic, state FROM {self.events} "
            f"WHERE {where} ORDER BY originator_id, originator_version",
            params,
        )
        found: dict[UUID, list[StoredEvent]] = {}
        for r in rows:
            stream_id = _uuid(r[0])
            found.setdefault(stream_id, []).append(StoredEvent(stream_id, int(r[1]), str(r[2]), bytes(r[3])))
        return found

    def existing(self, stream_ids: Sequence[UUID], chunk: int = 500) -> set[UUID]:
        """Which of these streams have any event (every stream begins at version 1: one key lookup each)."""
        found: set[UUID] = set()
        for start in range(0, len(stream_ids), chunk):
            part = stream_ids[start : start + chunk]
            where, params = self._any("originator_id", part)
            rows = self._rows(
                f"SELECT originator_id FROM {self.events} WHERE {where} AND originator_version = 1", params
            )
            found.update(_uuid(r[0]) for r in rows)
        return found

    def position_of(self, stream_id: UUID, version: int) -> int | None:
        """The position of one event, or None if it is not stored."""
        rows = self._rows(
            f"SELECT {self.pos} FROM {self.events} WHERE originator_id = ? AND originator_version = ?",
            [self._id(stream_id), version],
        )
        return int(rows[0][0]) if rows else None

    def chain_hashes(self, positions: Sequence[int]) -> dict[int, bytes]:
        """The global-chain hash recorded at each of some positions (absent where the ledger has none)."""
        if not positions:
            return {}
        params: list[Any]
        if self.postgres:
            where, params = "position = ANY(?)", [list(positions)]
        else:
            where, params = f"position IN ({','.join('?' * len(positions))})", list(positions)
        rows = self._rows(f"SELECT position, chain_hash FROM {self.chain} WHERE {where}", params)
        return {int(r[0]): bytes(r[1]) for r in rows}

    def max_position(self) -> int:
        """The position of the latest event, 0 when the ledger is empty."""
        return self.recorder.max_notification_id() or 0

    def chained(self, batch: int = 5000) -> Iterator[ChainedEvent]:
        """Every event in position order with its recorded hashes, read in batches."""
        after = 0
        while True:
            rows = self._rows(
                f"SELECT e.{self.pos}, e.originator_id, e.originator_version, e.topic, e.state, h.stream_hash, "
                f"h.chain_hash FROM {self.events} e LEFT JOIN {self.chain} h ON h.position = e.{self.pos} "
                f"WHERE e.{self.pos} > ? ORDER BY e.{self.pos} LIMIT ?",
                [after, batch],
            )
            if not rows:
                return
            for row in rows:
                yield _chained(row)
            after = int(rows[-1][0])

    def chained_streams(self, stream_ids: Sequence[UUID]) -> list[ChainedEvent]:
        """Every event of some streams in position order, with their recorded hashes."""
        where, params = self._any("e.originator_id", stream_ids)
        rows = self._rows(
            f"SELECT e.{self.pos}, e.originator_id, e.originator_version, e.topic, e.state, h.stream_hash, "
            f"h.chain_hash FROM {self.events} e LEFT JOIN {self.chain} h ON h.position = e.{self.pos} "
            f"WHERE {where} ORDER BY e.originator_id, e.originator_version",
            params,
        )
        rows.sort(key=_position)
        return [_chained(row) for row in rows]


def _position(row: tuple[Any, ...]) -> int:
    return int(row[0])


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _chained(row: tuple[Any, ...]) -> ChainedEvent:
    return ChainedEvent(
        position=int(row[0]),
        stream_id=_uuid(row[1]).hex,
        version=int(row[2]),
        topic=str(row[3]),
        state=bytes(row[4]),
        stream_hash=bytes(row[5]) if row[5] is not None else None,
        chain_hash=bytes(row[6]) if row[6] is not None else None,
    )
