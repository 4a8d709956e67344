"""Reads of the event log that the library does not offer: several streams at once, with positions and
the hash chains. The same SQL serves SQLite (position = rowid) and PostgreSQL (position =
notification_id), through the application's recorder or through a read-only connection of an offline
tool (``scripts/verify_ledger.py``, ``scripts/export_history.py``); and the mapper that reports an event that
does not decode with its position, in one place for every reader."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    UUIDAsHex,
)
from eventsourcing.utils import TopicError

from ledger.domain import errors
from ledger.integrity import ChainedEvent
from ledger.proofs.store import ProofStore

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class PositionedEvent:
    """A stored event with its global position (notification id)."""

    position: int
    stored: StoredEvent


class LedgerMapper(Mapper[UUID]):
    """Maps stored events to domain events; a stored event whose state does not decode, or whose topic
    names no event class, raises ``EventUndecodable`` naming its position."""

    # Finds an event's position from its stream and version (set by the application: a stored event read
    # by stream carries no position; a notification does).
    locate: Callable[[UUID, int], int | None] | None = None

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """The domain event, or EventUndecodable."""
        try:
            return super().to_domain_event(stored_event)
        except (MapperDeserialisationError, TopicError):
            raise self.undecodable(stored_event) from None

    def undecodable(self, stored_event: StoredEvent) -> errors.EventUndecodable:
        """The error for a stored event that does not decode, with its position when it can be found."""
        stream_id, version = stored_event.originator_id, stored_event.originator_version
        position = getattr(stored_event, "id", None)
        if position is None and self.locate is not None:
            try:
                position = self.locate(UUID(str(stream_id)), version)
            except Exception:  # the error being reported matters more than its position
                position = None
        return errors.EventUndecodable(int(position or 0), str(stream_id), version)


class _OffThePlainPath(Exception):
    """A value the fast path does not carry (the library's path takes it)."""


class LedgerTranscoder(JSONTranscoder):
    """The library's JSON transcoder, encoding with orjson on the common path: the same stored bytes
    (compact separators, text as UTF-8, a registered type as ``{"_type_", "_data_"}``) in about 60% of the
    time. A value off that path (a float, an integer beyond 64 bits, an enum or any type without a
    transcoding, a non-text key) and anything orjson refuses take the library's path, so they are stored
    or refused exactly as before. Decoding is the library's (orjson and the object hook in Python measured
    no faster than the library's C decoder with its hook)."""

    def encode(self, obj: Any) -> bytes:
        """The object as JSON bytes, as the library writes them."""
        try:
            return orjson.dumps(self._plain(obj))
        except (_OffThePlainPath, orjson.JSONEncodeError):
            return super().encode(obj)

    def _plain(self, value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            return value
        if kind is dict:
            return {k: self._plain(v) for k, v in value.items()}
        if kind is list or kind is tuple:
            return [self._plain(v) for v in value]
        transcoding = self.types.get(kind)
        if transcoding is None:  # a float, a subclass, a type without a transcoding
            raise _OffThePlainPath
        return {"_type_": transcoding.name, "_data_": self._plain(transcoding.encode(value))}


def stored_transcoder() -> JSONTranscoder:
    """The JSON transcoder the ledger stores event states with (no cipher, no compression)."""
    t = JSONTranscoder()
    t.register(UUIDAsHex())
    t.register(DatetimeAsISO())
    return t


class LogReader:
    """Position-aware reads over one events table and its chain table."""

    def __init__(
        self, query: Query, *, postgres: bool, events: str, chain: str, max_position: Callable[[], int] | None = None
    ) -> None:
        self._query = query
        self.postgres = postgres
        self.events, self.chain = events, chain
        self.pos, self.mark = ("notification_id", "%s") if postgres else ("rowid", "?")
        self._max_position = max_position

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._query(sql.replace("?", self.mark), params)

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
        found: dict[UUID, list[StoredEvent]] = {}
        for p in self.read_streams(stream_ids):  # within a stream, position order is version order
            found.setdefault(_uuid(p.stored.originator_id), []).append(p.stored)
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

    def max_position(self) -> int:
        """The position of the latest event, 0 when the ledger is empty."""
        if self._max_position is not None:
            return self._max_position()
        rows = self._rows(f"SELECT MAX({self.pos}) FROM {self.events}", [])
        return int(rows[0][0] or 0)

    def count_after(self, position: int) -> int:
        """How many events lie after ``position`` (with gap-free positions: the log's end minus it)."""
        rows = self._rows(f"SELECT COUNT(*) FROM {self.events} WHERE {self.pos} > ?", [position])
        return int(rows[0][0] or 0)

    def head(self) -> tuple[int, bytes | None]:
        """The last chained position and its chain hash ((0, None) when nothing is chained)."""
        rows = self._rows(f"SELECT position, chain_hash FROM {self.chain} ORDER BY position DESC LIMIT 1", [])
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else (0, None)

    def chain_hashes(self, positions: Sequence[int]) -> dict[int, bytes]:
        """The recorded chain hashes at these positions (absent where no chain row exists)."""
        if not positions:
            return {}
        params: list[Any] = [list(positions)] if self.postgres else list(positions)
        where = "position = ANY(?)" if self.postgres else f"position IN ({','.join('?' * len(positions))})"
        rows = self._rows(f"SELECT position, chain_hash FROM {self.chain} WHERE {where}", params)
        return {int(r[0]): bytes(r[1]) for r in rows}

    def _chained_sql(self, where: str, order: str) -> str:
        # The one chained SELECT: every event with its recorded hashes (NULL where the chain row is missing).
        return (
            f"SELECT e.{self.pos}, e.originator_id, e.originator_version, e.topic, e.state, h.stream_hash, "
            f"h.chain_hash FROM {self.events} e LEFT JOIN {self.chain} h ON h.position = e.{self.pos} "
            f"WHERE {where} ORDER BY {order}"
        )

    def chained(self, after: int = 0, batch: int = 5000) -> Iterator[ChainedEvent]:
        """Every event (after position ``after``) in position order with its recorded hashes, read in
        batches."""
        while True:
            rows = self._rows(self._chained_sql(f"e.{self.pos} > ?", f"e.{self.pos} LIMIT ?"), [after, batch])
            if not rows:
                return
            for row in rows:
                yield _chained(row)
            after = int(rows[-1][0])

    def chained_streams(self, stream_ids: Sequence[UUID]) -> list[ChainedEvent]:
        """Every event of some streams in position order, with their recorded hashes."""
        if not stream_ids:
            return []
        where, params = self._any("e.originator_id", stream_ids)
        rows = self._rows(self._chained_sql(where, "e.originator_id, e.originator_version"), params)
        rows.sort(key=_position)
        return [_chained(row) for row in rows]

    def first_events(self, topic: str, after: int = 0, batch: int = 5000) -> Iterator[tuple[int, UUID]]:
        """(position, stream id) of every stream's first event stored under ``topic``, in position order,
        read in batches."""
        while True:
            rows = self._rows(
                f"SELECT {self.pos}, originator_id FROM {self.events} WHERE topic = ? AND originator_version = 1 "
                f"AND {self.pos} > ? ORDER BY {self.pos} LIMIT ?",
                [topic, after, batch],
            )
            if not rows:
                return
            for row in rows:
                yield int(row[0]), _uuid(row[1])
            after = int(rows[-1][0])

    def holders_of(self, number_id: UUID) -> list[UUID]:
        """The subscribers who held a number, from its stored Activated events alone (no keys needed; a
        damaged event is skipped, and the chain check reports it)."""
        return holders_in(self.stream_events([number_id]).get(number_id, []))


def holders_in(number_events: Sequence[StoredEvent]) -> list[UUID]:
    """The subscribers a number's stored events name as holders, in order (damaged events skipped)."""
    codec = stored_transcoder()
    holders: list[UUID] = []
    for stored in number_events:
        if not stored.topic.endswith(":Number.Activated"):
            continue
        try:
            holder = codec.decode(stored.state)["subscriber_id"]
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError):
            continue
        if isinstance(holder, UUID) and holder not in holders:
            holders.append(holder)
    return holders


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


def sql_proof_store(datastore: Any, row: Callable[[Any], tuple[Any, ...]], postgres: bool) -> ProofStore:
    """The proof tables (tree, signed heads, stream map) over an SQL recorder's datastore (its pool);
    ``row`` turns one fetched row into a tuple."""

    def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [row(r) for r in c.fetchall()]

    def write(statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        with datastore.transaction(commit=True) as c:
            for sql, values in statements:
                if values:
                    c.executemany(sql, values)

    return ProofStore(query, write, postgres=postgres, prefix=f'"{datastore.schema}".' if postgres else "")


def sql_stream_ids(datastore: Any, table: str, row: Callable[[Any], tuple[Any, ...]]) -> set[UUID]:
    """Ids of the streams that have any row in ``table`` (a snapshots table)."""
    with datastore.transaction(commit=False) as c:
        c.execute(f"SELECT DISTINCT originator_id FROM {table}")
        return {UUID(str(row(r)[0])) for r in c.fetchall()}
