"""The ledger application: the library's Application with the ledger's store, snapshots and commit
notifications (what units of work need of it: ``unit_of_work.Ledger``), and the operations that are not
lifecycle commands sent by clients (recording disclosures, finishing erasures)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from ledger.adapters import EventLog, batch_store, log_reader, proof_store, snapshot_ids
from ledger.adapters.group_commit import GroupCommitter
from ledger.adapters.log import LedgerMapper, LedgerTranscoder
from ledger.application.commands import CompleteErasure
from ledger.application.handlers import shred
from ledger.application.pipeline import execute, retrying
from ledger.application.unit_of_work import Clock, Companions, StagedUnitOfWork, UnitOfWork
from ledger.domain import errors
from ledger.domain.context import Context
from ledger.proofs.batches import BatchKey, LedgerTampered, prepare
from ledger.snapshots import SNAPSHOT_INTERVAL, SNAPSHOTTED, LedgerSnapshot, SnapshotStore, comparable, replay
from ledger.snapshots import due as snapshots_due

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate

    from ledger.domain.number import Number
    from ledger.domain.subscriber import Subscriber
    from ledger.keys.vault import PersonalDataVault
    from ledger.policy import Policy

log = logging.getLogger(__name__)


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)


class LedgerApplication(Application):
    """Records lifecycle commands as events (``pipeline.execute(app, command, ...)``); every rule is checked
    against freshly loaded state."""

    name = "Ledger"

    def __init__(
        self,
        env: dict[str, str],
        vault: PersonalDataVault,
        policy: Policy,
        clock: Clock | None = None,
        group_commit: bool = True,
    ) -> None:
        super().__init__(env={**env, "IS_SNAPSHOTTING_ENABLED": "y"})
        self.committer = GroupCommitter(self.save_events) if group_commit else None
        # Told how many events each save appended, and how many subscribers' personal data each disclosure
        # opens (the server's metrics; nothing by default).
        self.appended: Callable[[int], None] = _ignore
        self.disclosed: Callable[[int], None] = _ignore
        self.vault = vault
        self.policy = policy
        self.clock: Clock = clock or SystemClock()
        self.companions = Companions()
        self.reader: EventLog = log_reader(self.recorder)
        if isinstance(self.mapper, LedgerMapper):
            self.mapper.locate = self.reader.position_of
        # The Merkle tree, signed heads and stream map (None on the in-memory store).
        self.proofs = proof_store(self.recorder)
        # Every batch this server writes is authenticated under a key derived from the master key.
        self.batch_key = BatchKey.from_master(vault.master)
        self.batches = batch_store(self.recorder)
        writer = self.recorder.batch_writer  # type: ignore[attr-defined]
        writer.key = self.batch_key
        try:
            writer.start = prepare(self.batch_key, self.batches, self.reader.max_position())
        except LedgerTampered as e:
            writer.start, writer.tampered = 1, str(e)
            log.error("writes refused: %s; run scripts.verify_ledger", e)
        if writer.start > 1:
            log.info("the %d events before batch authentication are covered by the signed heads only", writer.start - 1)
        # Called with the position after each commit (wakes an in-process projector and feeds).
        self.commit_listeners: list[Callable[[int], None]] = []
        self.finish_pending_erasures()

    def staged(self) -> StagedUnitOfWork:
        """A unit of work that holds commands' events until its ``flush`` (bulk import)."""
        return StagedUnitOfWork(self)

    # Loading.

    def load(self, aggregate_id: UUID) -> Any:
        """A stream's aggregate as stored (through its snapshot if it has one); AggregateNotFoundError
        when it has no events."""
        return self.repository.get(aggregate_id)

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether the stream has any event."""
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def existing(self, stream_ids: list[UUID]) -> set[UUID]:
        """Which of these streams have events (one query)."""
        return self.reader.existing(stream_ids)

    def prefetch(self, stream_ids: list[UUID]) -> dict[UUID, Any]:
        """These streams' aggregates read in one query (the library reads one stream per query), None for
        a stream without events; streams with a snapshot are left out (they load through it)."""
        known = self.snapshot_store.known
        wanted = [i for i in dict.fromkeys(stream_ids) if i not in known]
        stored = self.reader.stream_events(wanted)
        loaded: dict[UUID, Any] = {}
        for stream_id in wanted:
            aggregate = None
            for item in stored.get(stream_id, ()):
                aggregate = self.mapper.to_domain_event(item).mutate(aggregate)  # type: ignore[attr-defined]
            loaded[stream_id] = aggregate
            if aggregate is not None and aggregate.version >= SNAPSHOT_INTERVAL and isinstance(aggregate, SNAPSHOTTED):
                # Replayed in full: another process snapshotted it after this one started, or its snapshot
                # was lost. Snapshot it at the version loaded, or learn of the one stored there.
                self.store_snapshot(aggregate)
        return loaded

    def position_of(self, stream_id: UUID, version: int) -> int | None:
        """The ledger position of a stream's event at this version."""
        position: int | None = self.reader.position_of(stream_id, version)
        return position

    def get_number(self, number: str) -> Number:
        """The number's aggregate, or NumberNotFound."""
        return UnitOfWork(self).number(number)

    def get_subscriber(self, subscriber_id: UUID) -> Subscriber:
        """The subscriber's aggregate, or SubscriberNotFound."""
        return UnitOfWork(self).subscriber(subscriber_id)

    # Saving.

    def save_events(self, *events: Any) -> list[Any]:
        """Record already collected events atomically. ``Application.save`` does the same after testing
        every argument against a runtime-checkable Protocol, which costs more than the insert.
        Streams that reached a multiple of the snapshot interval are then snapshotted."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        processing_event.events.extend(events)
        recordings = self._record(processing_event)
        self.appended(len(recordings))
        self._notify(recordings)
        for stream_id, version in snapshots_due(events):
            self._take_snapshot(stream_id, version)
        return recordings

    def commit(self, aggregates: list[Aggregate]) -> list[Any]:
        """Save the aggregates' new events atomically, with other commands' when group commit is on."""
        events = [e for aggregate in aggregates for e in aggregate.collect_events()]
        if self.committer is None:
            return self.save_events(*events)
        return self.committer.submit(events)

    def refuse_writes(self, problem: str) -> None:
        """Tampering was seen (events no ledger server wrote): refuse every write from now on."""
        writer = self.recorder.batch_writer  # type: ignore[attr-defined]
        if not writer.tampered:
            writer.tampered = problem
            log.error("writes refused: %s", problem)

    def published(self, position: int) -> None:
        """Tell the commit listeners that everything up to ``position`` is committed."""
        for listener in self.commit_listeners:
            listener(position)

    def close(self) -> None:
        """Stop the group committer (finishing what is queued), then close the store."""
        if self.committer is not None:
            self.committer.close()
        super().close()

    def construct_transcoder(self) -> Any:
        """The library's JSON transcoder with orjson on the common path (the same bytes)."""
        transcoder = LedgerTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_mapper(self) -> Any:
        """The library's mapper, reporting an event that does not decode as ``EventUndecodable``."""
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=LedgerMapper)

    # Snapshots: a cache of long streams, never evidence.

    def construct_snapshot_store(self) -> Any:
        """The library's snapshot store, fronted by the ids of the streams that have snapshots."""
        store = super().construct_snapshot_store()
        return SnapshotStore(store, snapshot_ids(self.recorder, store.recorder))

    @property
    def snapshot_store(self) -> SnapshotStore:
        """The snapshot store (snapshotting is always on)."""
        store: SnapshotStore = self.snapshots  # type: ignore[assignment]
        return store

    def _take_snapshot(self, stream_id: UUID, version: int) -> None:
        # The events are committed: a snapshot that fails only means a longer replay later.
        try:
            aggregate: Any = self.repository.get(stream_id, version=version)
        except Exception:
            log.warning("snapshot of stream %s at version %d not taken", stream_id, version, exc_info=True)
            return
        self.store_snapshot(aggregate)

    def store_snapshot(self, aggregate: Any) -> None:
        """Snapshot an aggregate as loaded (from committed events). A snapshot already stored at that version
        (another process took it) is only learnt; any other failure is logged, never raised."""
        store = self.snapshot_store
        try:
            store.put([LedgerSnapshot.take(aggregate)])
        except IntegrityError:
            store.known.add(aggregate.id)
        except Exception:
            log.warning("snapshot of stream %s at version %d not taken", aggregate.id, aggregate.version, exc_info=True)

    def verify_snapshots(self, stream_ids: list[UUID] | None = None) -> list[tuple[UUID, int]]:
        """(stream id, version) of every snapshot (of all streams, or of these) that differs from a replay
        of its stream's events."""
        store = self.snapshot_store
        bad = []
        for stream_id in sorted(snapshot_ids(self.recorder, store.recorder) if stream_ids is None else stream_ids):
            for snapshot in store.store.get(stream_id):
                expected = replay(self.events, stream_id, snapshot.originator_version)
                if expected is None or comparable(snapshot.mutate(None)) != comparable(expected):  # type: ignore[attr-defined]
                    bad.append((stream_id, snapshot.originator_version))
        return bad

    # Writes that are not lifecycle commands.

    def record_personal_data_reads(self, subscriber_ids: list[UUID], number: str, purpose: str, actor: str) -> int:
        """Record, atomically and before disclosure, that ``actor`` read these subscribers' personal data."""
        if not subscriber_ids:
            return 0
        ctx_id = f"read-{uuid4()}"

        def attempt() -> int:
            unit = UnitOfWork(self)
            ctx = Context(actor=actor, request_id=ctx_id, occurred_at=self.clock.now())
            logs = []
            for sid in subscriber_ids:
                access_log = unit.access_log(sid, ctx)
                access_log.record_read(number, purpose, ctx)
                logs.append(access_log)
            position: int = self.commit(list(logs))[-1].notification.id
            self.published(position)
            return position

        position = retrying(attempt, "recording the personal data read")
        self.disclosed(len(subscriber_ids))
        return position

    def complete_erasure(self, *, subscriber_id: UUID, actor: str) -> bool:
        """Finish a held erasure whose retention period has ended (destroy the key, recorded as an event);
        False when it is not due yet or was finished already. The request id is derived from the
        subscriber, so running it twice (two passes, two processes) records it once."""
        subscriber = self.get_subscriber(subscriber_id)
        due = subscriber.erasure_due_at
        if subscriber.is_erased or due is None or due > self.clock.now():
            return False
        command = CompleteErasure(subscriber_id=subscriber_id)
        result = execute(self, command, request_id=f"erase-due/{subscriber_id}", actor=actor)
        return bool(result.data.get("erased")) and not result.replayed

    def finish_pending_erasures(self) -> None:
        """Destroy keys of erasures recorded before a crash; drop intents that were never recorded."""
        for subscriber_id in self.vault.store.pending_erasures():
            try:
                erased = self.get_subscriber(subscriber_id).is_erased
            except errors.SubscriberNotFound:
                erased = False
            if erased:
                shred(self, subscriber_id, self.get_subscriber(subscriber_id).personal_data)
                log.info("finished erasure of subscriber %s after restart", subscriber_id)
            else:
                self.vault.store.clear_pending(subscriber_id)


def _ignore(_count: int) -> None:
    """Nobody listens."""
