"""Tamper evidence: the hash chains every stored event is linked into, and their verification.

Two chains are kept in the ``event_chain`` table, written in the same transaction as the events:

- the stream chain: ``stream_hash(e) = H("ledger-stream-v1" | stream_hash(previous event of the stream)
  | stream id | version | topic | state)``, so one number's (or subscriber's) history verifies alone;
- the global chain: ``chain_hash(p) = H("ledger-chain-v1" | chain_hash(p - 1) | position | stream_hash(p))``
  over the gap-free positions, whose head is the digest an auditor publishes.

``state`` is the stored bytes, so erasure (destroying a key) changes nothing that is hashed. A changed,
removed or reordered event no longer matches its chain and is reported at its position.

Pure functions only: the recorders (``ledger/adapters/``) compute the rows they insert with
``chain_rows``; the server, ``scripts/verify_ledger.py`` and ``scripts/export_history.py`` verify what a
``LogReader`` reads back with ``verify_chain`` and ``verify_streams``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

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


def chain_rows(
    events: Sequence[StoredEvent],
    positions: Sequence[int],
    previous_chain: bytes,
    stream_head: Callable[[Any, int], bytes],
) -> list[tuple[int, bytes, bytes]]:
    """The (position, stream hash, chain hash) rows of newly inserted events. ``previous_chain`` is the
    chain hash before the first of them; ``stream_head(stream_id, version)`` is the stored stream hash of
    an earlier event (only asked for a stream's first event in the batch, never for version 0)."""
    heads: dict[Any, bytes] = {}
    rows = []
    for event, position in zip(events, positions, strict=True):
        previous_stream = heads.get(event.originator_id)
        if previous_stream is None:
            version = event.originator_version - 1
            previous_stream = stream_head(event.originator_id, version) if version >= 1 else GENESIS
        digest = stream_hash(previous_stream, event.originator_id, event.originator_version, event.topic, event.state)
        previous_chain = chain_hash(previous_chain, position, digest)
        heads[event.originator_id] = digest
        rows.append((position, digest, previous_chain))
    return rows


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
    # The stream of the problem (hex id) when it is one stream's, and the signed head checked against.
    stream: str = ""
    signed_head_size: int = 0
    # (position, subscriber id) of registrations whose data key is neither stored nor destroyed (whole ledger).
    keyless_registrations: tuple[tuple[int, str], ...] = ()


def verify_chain(events: Iterator[ChainedEvent], up_to: int = 0) -> IntegrityReport:
    """Recompute the global chain over events in position order (the whole ledger); with ``up_to``, a
    chain that ends before that position is reported as rolled back."""
    previous_chain = GENESIS
    stream_heads: dict[str, tuple[int, bytes]] = {}
    checked = 0
    for e in events:
        if up_to and e.position > up_to:
            break
        if e.position != checked + 1:
            return _bad(checked, checked + 1, previous_chain, f"position {checked + 1} is missing")
        digest, problem = _stream_step(e, stream_heads)
        if digest is None:
            problem = problem or f"stream {e.stream_id} version {e.version} out of order"
            return _bad(checked, e.position, previous_chain, problem)
        recomputed = chain_hash(previous_chain, e.position, digest)
        if e.chain_hash != recomputed:
            return _bad(checked, e.position, previous_chain, "chain hash does not match")
        previous_chain = recomputed
        checked += 1
    if up_to and checked < up_to:
        problem = f"the ledger ends at position {checked}, before position {up_to}: rolled back?"
        return _bad(checked, checked + 1, previous_chain, problem)
    return IntegrityReport(True, checked, 0, previous_chain.hex() if checked else "", checked)


def verify_streams(events: Iterator[ChainedEvent]) -> IntegrityReport:
    """Recompute stream chains over some streams' events (each stream complete, in position order)."""
    stream_heads: dict[str, tuple[int, bytes]] = {}
    checked = 0
    last_digest = GENESIS
    last_position = 0
    for e in events:
        digest, problem = _stream_step(e, stream_heads)
        if digest is None:
            version = stream_heads.get(e.stream_id, (0, GENESIS))[0]
            problem = problem or f"stream {e.stream_id} is missing version {version + 1}"
            return _bad(checked, e.position, last_digest, problem)
        last_digest, last_position = digest, e.position
        checked += 1
    return IntegrityReport(True, checked, 0, last_digest.hex() if checked else "", last_position)


def _stream_step(e: ChainedEvent, heads: dict[str, tuple[int, bytes]]) -> tuple[bytes | None, str]:
    """Check one event against its stream's chain: (its stream hash, "") with the head moved on, or (None,
    the problem), the problem empty when the event's version does not follow the head's."""
    version, previous_stream = heads.get(e.stream_id, (0, GENESIS))
    if e.version != version + 1:
        return None, ""
    digest = stream_hash(previous_stream, e.stream_id, e.version, e.topic, e.state)
    if e.stream_hash != digest:
        return None, "event content does not match its stream hash"
    heads[e.stream_id] = (e.version, digest)
    return digest, ""


def _bad(checked: int, position: int, digest: bytes, problem: str) -> IntegrityReport:
    return IntegrityReport(False, checked, position, digest.hex() if checked else "", position - 1, problem)
