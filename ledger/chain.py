"""Tamper evidence: every stored event is chained by SHA-256 when it is recorded.

Two chains are kept in the ``event_chain`` table, written in the same transaction as the events:

- the stream chain: ``stream_hash(e) = H("ledger-stream-v1" | stream_hash(previous event of the stream)
  | stream id | version | topic | state)``, so one number's (or subscriber's) history verifies alone;
- the global chain: ``chain_hash(p) = H("ledger-chain-v1" | chain_hash(p - 1) | position | stream_hash(p))``
  over the gap-free positions, whose head is the digest an auditor publishes.

``state`` is the stored bytes, so erasure (destroying a key) changes nothing that is hashed. A changed,
removed or reordered event no longer matches its chain and is reported at its position.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

GENESIS = bytes(32)
CHAIN_TABLE = "event_chain"


def stream_hash(previous: bytes, stream_id: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """The stream-chain hash of one event."""
    sid = stream_id.bytes if isinstance(stream_id, UUID) else UUID(str(stream_id)).bytes
    h = hashlib.sha256(b"ledger-stream-v1")
    h.update(previous)
    h.update(sid)
    h.update(struct.pack(">Q", version))
    h.update(struct.pack(">I", len(topic)) + topic.encode())
    h.update(struct.pack(">Q", len(state)) + state)
    return h.digest()


def chain_hash(previous: bytes, position: int, stream_digest: bytes) -> bytes:
    """The global-chain hash at one position."""
    return hashlib.sha256(b"ledger-chain-v1" + previous + struct.pack(">Q", position) + stream_digest).digest()


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
        last_stream: dict[Any, bytes] = {}
        rows = []
        for event, position in zip(stored_events, positions, strict=True):
            key = event.originator_id
            previous_stream = last_stream.get(key)
            if previous_stream is None:
                previous_stream = self._stream_head(c, event.originator_id, event.originator_version - 1)
            digest = stream_hash(
                previous_stream, event.originator_id, event.originator_version, event.topic, event.state
            )
            previous_chain = chain_hash(previous_chain, position, digest)
            last_stream[key] = digest
            rows.append((position, digest, previous_chain))
        c.executemany(f"INSERT INTO {CHAIN_TABLE} VALUES (?, ?, ?)", rows)
        return positions

    def _stream_head(self, c: SQLiteCursor, stream_id: UUID | str, version: int) -> bytes:
        if version < 1:
            return GENESIS
        sid = stream_id.hex if isinstance(stream_id, UUID) else stream_id
        c.execute(
            f"SELECT h.stream_hash FROM {self.events_table_name} e JOIN {CHAIN_TABLE} h ON h.position = e.rowid "
            "WHERE e.originator_id = ? AND e.originator_version = ?",
            (sid, version),
        )
        row = c.fetchone()
        return bytes(row[0]) if row else GENESIS


@dataclass(frozen=True)
class ChainedEvent:
    """A stored event with its position and recorded hashes (None when the chain row is missing)."""

    position: int
    stream_id: str
    version: int
    topic: str
    state: bytes
    stream_hash: bytes | None
    chain_hash: bytes | None


@dataclass(frozen=True)
class IntegrityReport:
    """The result of a verification."""

    ok: bool
    events_checked: int
    first_bad_position: int
    head_digest: str
    head_position: int
    problem: str = ""


def verify_chain(events: Iterator[ChainedEvent], up_to: int = 0) -> IntegrityReport:
    """Recompute the global chain over events in position order (the whole ledger)."""
    previous_chain = GENESIS
    stream_heads: dict[str, tuple[int, bytes]] = {}
    expected_position = 1
    checked = 0
    for e in events:
        if up_to and e.position > up_to:
            break
        if e.position != expected_position:
            return _bad(checked, expected_position, previous_chain, f"position {expected_position} is missing")
        version, previous_stream = stream_heads.get(e.stream_id, (0, GENESIS))
        if e.version != version + 1:
            return _bad(checked, e.position, previous_chain, f"stream {e.stream_id} version {e.version} out of order")
        digest = stream_hash(previous_stream, e.stream_id, e.version, e.topic, e.state)
        if e.stream_hash != digest:
            return _bad(checked, e.position, previous_chain, "event content does not match its stream hash")
        recomputed = chain_hash(previous_chain, e.position, digest)
        if e.chain_hash != recomputed:
            return _bad(checked, e.position, previous_chain, "chain hash does not match")
        previous_chain = recomputed
        stream_heads[e.stream_id] = (e.version, digest)
        expected_position += 1
        checked += 1
    return IntegrityReport(True, checked, 0, previous_chain.hex() if checked else "", checked)


def verify_streams(events: Iterator[ChainedEvent]) -> IntegrityReport:
    """Recompute stream chains over some streams' events (each stream complete, in position order)."""
    stream_heads: dict[str, tuple[int, bytes]] = {}
    checked = 0
    last_digest = GENESIS
    last_position = 0
    for e in events:
        version, previous_stream = stream_heads.get(e.stream_id, (0, GENESIS))
        if e.version != version + 1:
            return _bad(checked, e.position, last_digest, f"stream {e.stream_id} is missing version {version + 1}")
        digest = stream_hash(previous_stream, e.stream_id, e.version, e.topic, e.state)
        if e.stream_hash != digest:
            return _bad(checked, e.position, last_digest, "event content does not match its stream hash")
        stream_heads[e.stream_id] = (e.version, digest)
        last_digest, last_position = digest, e.position
        checked += 1
    return IntegrityReport(True, checked, 0, last_digest.hex() if checked else "", last_position)


def _bad(checked: int, position: int, digest: bytes, problem: str) -> IntegrityReport:
    return IntegrityReport(False, checked, position, digest.hex() if checked else "", position - 1, problem)
