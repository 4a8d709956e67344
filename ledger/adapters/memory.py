"""The in-memory backend, for fast tests: the library's POPO recorder with the hash chains and a log
reader over plain Python lists (the key store is ``ledger.keys.stores.MemoryKeyStore``).
``PERSISTENCE_MODULE=ledger.adapters.memory:MemoryFactory`` selects it (see ``memory_env``); nothing is
written to disk."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory

from ledger.adapters.log import PositionedEvent
from ledger.integrity import GENESIS, ChainedEvent, chain_rows
from ledger.proofs.batches import Batch, BatchWriter, Mark
from ledger.proofs.merkle import append_nodes, event_leaf_hash

__all__ = ["ChainedMemoryRecorder", "MemoryFactory", "MemoryLogReader", "memory_env"]


def memory_env() -> dict[str, str]:
    """The application environment of an in-memory ledger."""
    return {"PERSISTENCE_MODULE": "ledger.adapters.memory:MemoryFactory"}


class ChainedMemoryRecorder(POPOApplicationRecorder):
    """The library's in-memory recorder, plus both hash chains written with the events."""

    def __init__(self) -> None:
        super().__init__()
        self.chain: dict[int, tuple[bytes, bytes]] = {}
        self.tree: dict[tuple[int, int], bytes] = {}  # the Merkle tree's complete subtrees
        self.batch_rows: list[Batch] = []  # the authenticated batches, in order
        self.mark_rows: dict[str, Mark] = {}
        self.batch_writer = BatchWriter()

    def _update_table(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if stored_events:  # checked before anything is written: the list is not rolled back
            first = len(self._stored_events) + 1
            positions = list(range(first, first + len(stored_events)))
            batch = self.batch_writer.seal(self._last_sealed, stored_events, positions)
        positions = list(super()._update_table(stored_events, **kwargs) or [])
        previous_chain = self.chain[positions[0] - 1][1] if positions and positions[0] > 1 else GENESIS
        for position, digest, chained in chain_rows(stored_events, positions, previous_chain, self._stream_head):
            self.chain[position] = (digest, chained)
        if positions:
            leaves = [
                event_leaf_hash(p, str(e.originator_id), e.originator_version, e.topic, e.state)
                for e, p in zip(stored_events, positions, strict=True)
            ]
            self.tree.update(append_nodes(positions[0] - 1, leaves, lambda level, index: self.tree[(level, index)]))
            self.batch_rows.append(batch)
            self.batch_writer.end = positions[-1]
        return positions

    def log_reader(self) -> MemoryLogReader:
        """The log reader over these lists."""
        return MemoryLogReader(self)

    def proof_store(self) -> None:
        """None: the in-memory store keeps the tree's nodes (``tree``) but no signed heads or stream map."""
        return None

    def batch_store(self) -> ChainedMemoryRecorder:
        """This recorder: it keeps the batch rows and marks itself."""
        return self

    def snapshot_ids(self, snapshots: Any) -> set[UUID]:
        """Ids of the streams that have a snapshot in the in-memory snapshots recorder."""
        with snapshots._database_lock:
            return {UUID(str(s.originator_id)) for s in snapshots._stored_events}

    def _last_sealed(self, _sql: str, _params: Sequence[Any]) -> list[tuple[Any, ...]]:
        # The one read ``BatchWriter.seal`` makes: the last batch's last position.
        return [(self.batch_rows[-1].last,)] if self.batch_rows else []

    # The batch rows and marks (``ledger.proofs.batches.BatchStore``).

    def marks(self) -> dict[str, Mark]:
        """Every mark by name."""
        return dict(self.mark_rows)

    def record_mark(self, name: str, mark: Mark) -> None:
        """Record a mark (kept when one of that name is there)."""
        self.mark_rows.setdefault(name, mark)

    def drop_mark(self, name: str) -> None:
        """Remove a mark."""
        self.mark_rows.pop(name, None)

    def batches(self, after: int, limit: int) -> list[Batch]:
        """Up to ``limit`` batches whose first position is above ``after``, in order."""
        return [b for b in self.batch_rows if b.first > after][:limit]

    def batch_at(self, position: int) -> Batch | None:
        """The batch that holds ``position`` (None when none does)."""
        return next((b for b in self.batch_rows if b.first <= position <= b.last), None)

    def _stream_head(self, stream_id: Any, version: int) -> bytes:
        index = self._stored_events_index[str(stream_id)].get(version)
        return GENESIS if index is None else self.chain[index + 1][0]

    def positioned(self) -> list[PositionedEvent]:
        """Every stored event with its position."""
        with self._database_lock:
            return [PositionedEvent(i + 1, s) for i, s in enumerate(self._stored_events)]


class MemoryFactory(POPOFactory):
    """The library's in-memory factory, recording through ``ChainedMemoryRecorder``."""

    def application_recorder(self) -> ApplicationRecorder:
        """The chained in-memory recorder."""
        return ChainedMemoryRecorder()


class MemoryLogReader:
    """The reads of ``ledger.adapters.log.LogReader``, over the in-memory recorder."""

    def __init__(self, recorder: ChainedMemoryRecorder) -> None:
        self.recorder = recorder

    def read_streams(self, stream_ids: Sequence[UUID]) -> list[PositionedEvent]:
        """Every event of the given streams, in ledger order."""
        wanted = set(stream_ids)
        return [p for p in self.recorder.positioned() if p.stored.originator_id in wanted]

    def stream_events(self, stream_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of several streams, in version order; streams without events are absent."""
        found: dict[UUID, list[StoredEvent]] = {}
        for p in self.read_streams(stream_ids):
            found.setdefault(UUID(str(p.stored.originator_id)), []).append(p.stored)
        return found

    def existing(self, stream_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these streams have any event."""
        return set(self.stream_events(stream_ids))

    def position_of(self, stream_id: UUID, version: int) -> int | None:
        """The position of one event, or None if it is not stored."""
        index = self.recorder._stored_events_index[str(stream_id)].get(version)
        return None if index is None else index + 1

    def max_position(self) -> int:
        """The position of the latest event, 0 when the ledger is empty."""
        return self.recorder.max_notification_id() or 0

    def chained(self, after: int = 0, batch: int = 0) -> Iterator[ChainedEvent]:
        """Every event (after position ``after``) in position order with its recorded hashes (``batch`` is
        the SQL reader's read size, unused here)."""
        return iter(self._chained(self.recorder.positioned()[after:]))

    def chained_streams(self, stream_ids: Sequence[UUID]) -> list[ChainedEvent]:
        """Every event of some streams in position order, with their recorded hashes."""
        return self._chained(self.read_streams(stream_ids))

    def chain_hashes(self, positions: Sequence[int]) -> dict[int, bytes]:
        """The recorded chain hashes at these positions (absent where no chain row exists)."""
        chain = self.recorder.chain
        return {p: chain[p][1] for p in positions if p in chain}

    def first_events(self, topic: str) -> Iterator[tuple[int, UUID]]:
        """(position, stream id) of every stream's first event stored under ``topic``, in position order."""
        for p in self.recorder.positioned():
            if p.stored.topic == topic and p.stored.originator_version == 1:
                yield p.position, UUID(str(p.stored.originator_id))

    def _chained(self, events: list[PositionedEvent]) -> list[ChainedEvent]:
        chain = self.recorder.chain
        return [
            ChainedEvent(
                p.position,
                UUID(str(p.stored.originator_id)).hex,
                p.stored.originator_version,
                p.stored.topic,
                p.stored.state,
                *chain.get(p.position, (None, None)),
            )
            for p in events
        ]
