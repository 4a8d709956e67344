"""Snapshots of long streams, so a command on a number with years of history loads a snapshot and the
few events after it instead of replaying everything.

A snapshot is a cache, never evidence: it is taken after the events it summarises were committed, it
lives outside the hash chains, and ``verify_snapshots`` replays each one's stream to prove it matches.
Only aggregates without personal data are snapshotted (numbers and access logs), so crypto-shredding
never has a second copy to reach.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.utils import resolve_topic

from ledger.domain.access import AccessLog
from ledger.domain.number import Number

if TYPE_CHECKING:
    from eventsourcing.persistence import EventStore

log = logging.getLogger(__name__)

# A snapshot is taken each time a stream reaches a multiple of this many events.
SNAPSHOT_INTERVAL = 100
SNAPSHOTTED = (Number, AccessLog)
SNAPSHOTTED_EVENTS = (Number.Event, AccessLog.Event)


class LedgerSnapshot(Snapshot):
    """The library's snapshot, with hooks for state the JSON transcoder cannot carry as it is: an aggregate
    class may define ``encode_snapshot_state(state) -> state`` and ``decode_snapshot_state(state) -> state``."""

    @classmethod
    def take(cls, aggregate: Any) -> LedgerSnapshot:
        """A snapshot of the aggregate as it is now."""
        snapshot = super().take(aggregate)
        encode = getattr(type(aggregate), "encode_snapshot_state", None)
        return replace(snapshot, state=encode(dict(snapshot.state))) if encode else snapshot

    def mutate(self, _: None) -> Any:
        """The aggregate the snapshot holds."""
        decode = getattr(resolve_topic(self.topic), "decode_snapshot_state", None)
        source = replace(self, state=decode(dict(self.state))) if decode else self
        return Snapshot.mutate(source, _)


class SnapshotStore:
    """The snapshot event store, fronted by the set of stream ids that have a snapshot, so the load of a
    stream without one (nearly all of them) costs no query. The set is read at start; a stream that
    another process snapshotted after that is replayed in full once, then snapshotted again at the
    version loaded (``LedgerApplication.store_snapshot``) and known from then on."""

    def __init__(self, store: EventStore[UUID], known: Iterable[UUID]) -> None:
        self.store = store
        self.recorder = store.recorder
        self.known = set(known)
        self._lock = threading.Lock()

    def get(self, originator_id: UUID, **kwargs: Any) -> Iterator[Any]:
        """Snapshots of one stream (none without a query when it has none)."""
        if originator_id not in self.known:
            return iter(())
        return iter(self.store.get(originator_id, **kwargs))

    def put(self, snapshots: list[LedgerSnapshot]) -> None:
        """Store snapshots."""
        self.store.put(snapshots)
        with self._lock:
            self.known.update(s.originator_id for s in snapshots)


def due(events: Iterable[Any]) -> list[tuple[UUID, int]]:
    """(stream id, version) of the events that bring a snapshotted stream to a multiple of the interval."""
    return [
        (e.originator_id, e.originator_version)
        for e in events
        if e.originator_version % SNAPSHOT_INTERVAL == 0 and isinstance(e, SNAPSHOTTED_EVENTS)
    ]


def replay(events: EventStore[UUID], stream_id: UUID, version: int) -> Any:
    """A stream's aggregate at ``version``, from its events alone."""
    aggregate = None
    for event in events.get(stream_id, lte=version):
        aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
    return aggregate


def comparable(aggregate: Any) -> dict[str, Any]:
    """An aggregate's state for comparison."""
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}
