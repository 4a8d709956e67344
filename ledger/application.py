"""The ledger application: one method per lifecycle RPC; load, decide, save atomically, retry on conflict."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from uuid import UUID, uuid4

import orjson
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.domain import errors
from ledger.domain.access import AccessLog
from ledger.domain.context import Context
from ledger.domain.indexes import IdentityHoldings, RequestRecord, SimCard
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber
from ledger.group_commit import GroupCommitter
from ledger.snapshots import (
    SNAPSHOT_INTERVAL,
    SNAPSHOTTED,
    LedgerSnapshot,
    SnapshotStore,
    comparable,
    replay,
    stored_snapshot_ids,
)
from ledger.snapshots import due as snapshots_due
from ledger.store import LogReader

if TYPE_CHECKING:
    from ledger.config import Policy
    from ledger.keys import PersonalDataVault

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 40
A = TypeVar("A", bound=Aggregate)


class Clock(Protocol):
    """Source of the current time (a fake one in tests)."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)


@dataclass(frozen=True)
class CommandResult:
    """What a command returns: its values and the ledger position of its last event."""

    position: int
    data: dict[str, Any]
    replayed: bool = False
    # Inside a staged import: index of the command's last event in the segment (position comes at flush).
    staged_at: int = -1


@dataclass
class Staging:
    """An import segment's work held in memory until ``flush_staging`` saves it in one transaction.

    Aggregates loaded or changed by the segment's commands stay here, so later commands of the segment
    see the earlier ones' effects; the segment's events, new data keys and erasure hooks wait for the
    flush. The aggregates are dropped at every flush, so no command is decided on state older than its
    segment; a concurrent writer's change to any of them makes the flush conflict.
    """

    aggregates: dict[UUID, Aggregate] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    keys: dict[UUID, bytes] = field(default_factory=dict)
    before: list[Callable[[], None]] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)
    touched: list[Aggregate] = field(default_factory=list)
    # Streams known to have no events yet (checked in bulk); loading one fails without a query.
    absent: set[UUID] = field(default_factory=set)

    def stage(self, aggregates: list[Aggregate], outcome: _Outcome) -> CommandResult:
        """Hold one decided command's events; its position is known after the flush."""
        for aggregate in aggregates:
            self.aggregates[aggregate.id] = aggregate
            self.absent.discard(aggregate.id)
            self.events.extend(aggregate.collect_events())
        if outcome.before_save is not None:
            self.before.append(outcome.before_save)
        if outcome.after_save is not None:
            self.after.append(outcome.after_save)
        return CommandResult(position=0, data=outcome.data, staged_at=len(self.events) - 1)

    def dirty(self) -> bool:
        """Whether the command that just failed left changes in aggregates it touched."""
        return any(a.pending_events for a in self.touched)

    def reset(self) -> None:
        """Forget everything held (after a flush, or when the segment is abandoned)."""
        self.aggregates.clear()
        self.events.clear()
        self.keys.clear()
        self.before.clear()
        self.after.clear()
        self.touched.clear()


@dataclass
class _Outcome:
    aggregates: list[Aggregate]
    data: dict[str, Any] = field(default_factory=dict)
    before_save: Callable[[], None] | None = None
    after_save: Callable[[], None] | None = None


class LedgerApplication(Application):
    """Records lifecycle commands as events; every rule is checked against freshly loaded state."""

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
        self.vault = vault
        self.policy = policy
        self.clock: Clock = clock or SystemClock()
        self.reader = LogReader(self.recorder)
        self._local = threading.local()
        # Called with the position after each commit (wakes an in-process projector and feeds).
        self.commit_listeners: list[Callable[[int], None]] = []
        self.commits = threading.Condition()
        self.commit_listeners.append(self._notify_commit)
        self.finish_pending_erasures()

    # Lifecycle commands, named after the RPCs.

    def provision_numbers(
        self, *, request_id: str, actor: str, numbers: list[str], occurred_at: datetime | None = None
    ) -> CommandResult:
        """Add numbers as AVAILABLE; numbers already in the ledger are skipped and reported."""
        unique = list(dict.fromkeys(numbers))

        def handle(ctx: Context) -> _Outcome:
            created: list[Aggregate] = []
            skipped: list[str] = []
            for number in unique:
                if self._exists(Number.create_id(number)):
                    skipped.append(number)
                else:
                    created.append(Number(number=number, **ctx.fields()))
            return _Outcome(created, {"provisioned_count": len(created), "already_provisioned": skipped})

        return self._execute("ProvisionNumbers", request_id, actor, occurred_at, {"numbers": unique}, handle)

    def register_subscriber(
        self,
        *,
        request_id: str,
        actor: str,
        full_name: str,
        id_type: str,
        id_number: str,
        date_of_birth: str,
        occurred_at: datetime | None = None,
    ) -> CommandResult:
        """Register a subscriber; personal data is sealed under a new data key of their own."""
        subscriber_id = Subscriber.id_for_request(request_id)
        personal = {"full_name": full_name, "id_type": id_type, "id_number": id_number, "date_of_birth": date_of_birth}

        def handle(ctx: Context) -> _Outcome:
            staging = self.staging
            if staging is not None:
                if subscriber_id not in staging.keys:
                    staging.keys.update([self.vault.new_key(subscriber_id)])
            elif not self.vault.has_key(subscriber_id):
                self.vault.create_key(subscriber_id)
            subscriber = Subscriber.register(
                subscriber_id,
                id_type=id_type,
                identity_key=self.vault.identity_key(id_type, id_number),
                personal_data=self.vault.seal(subscriber_id, personal),
                ctx=ctx,
            )
            return _Outcome([subscriber], {"subscriber_id": str(subscriber_id)})

        return self._execute("RegisterSubscriber", request_id, actor, occurred_at, personal, handle)

    def verify_identity(
        self,
        *,
        request_id: str,
        actor: str,
        subscriber_id: UUID,
        method: str,
        channel: str,
        agent_id: str,
        evidence_ref: str,
        occurred_at: datetime | None = None,
    ) -> CommandResult:
        """Record a real-name verification of a subscriber."""
        args = {
            "subscriber_id": subscriber_id,
            "method": method,
            "channel": channel,
            "agent_id": agent_id,
            "evidence_ref": evidence_ref,
        }

        def handle(ctx: Context) -> _Outcome:
            subscriber = self.get_subscriber(subscriber_id)
            subscriber.verify_identity(method, channel, agent_id, evidence_ref, ctx)
            return _Outcome([subscriber])

        return self._execute("VerifyIdentity", request_id, actor, occurred_at, args, handle, (subscriber_id,))

    def activate_sim(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        subscriber_id: UUID,
        iccid: str,
        imsi: str,
        channel: str,
        agent_id: str,
        occurred_at: datetime | None = None,
    ) -> CommandResult:
        """Start a tenure: verified identity, AVAILABLE number, under the cap, SIM not in use."""
        args = {
            "number": number,
            "subscriber_id": subscriber_id,
            "iccid": iccid,
            "imsi": imsi,
            "channel": channel,
            "agent_id": agent_id,
        }

        def handle(ctx: Context) -> _Outcome:
            num = self.get_number(number)
            subscriber = self.get_subscriber(subscriber_id)
            subscriber.ensure_may_hold_number(ctx.occurred_at)
            tenure_id = num.activate(subscriber_id, iccid, imsi, channel, agent_id, ctx)
            holdings = self._holdings(subscriber.identity_key, ctx)
            holdings.open_tenure(tenure_id, number, subscriber_id, self.policy.max_numbers_per_identity, ctx)
            sim = self._sim(iccid, ctx)
            sim.assign(number, tenure_id, ctx)
            return _Outcome([num, holdings, sim], {"tenure_id": str(tenure_id)})

        return self._execute(
            "ActivateSim",
            request_id,
            actor,
            occurred_at,
            args,
            handle,
            (Number.create_id(number), subscriber_id, SimCard.create_id(iccid)),
        )

    def swap_sim(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        new_iccid: str,
        new_imsi: str,
        reason: str,
        channel: str,
        agent_id: str,
        occurred_at: datetime | None = None,
    ) -> CommandResult:
        """Move a number in service to a new SIM; the new SIM must be free."""
        args = {
            "number": number,
            "new_iccid": new_iccid,
            "new_imsi": new_imsi,
            "reason": reason,
            "channel": channel,
            "agent_id": agent_id,
        }

        def handle(ctx: Context) -> _Outcome:
            num = self.get_number(number)
            old_iccid = num.swap_sim(new_iccid, new_imsi, reason, channel, agent_id, ctx)
            tenure = num.tenures[-1]
            new_sim = self._sim(new_iccid, ctx)
            new_sim.assign(number, tenure.tenure_id, ctx)
            old_sim = self._sim(old_iccid, ctx)
            old_sim.unassign(ctx)
            return _Outcome([num, old_sim, new_sim])

        return self._execute(
            "SwapSim",
            request_id,
            actor,
            occurred_at,
            args,
            handle,
            (Number.create_id(number), SimCard.create_id(new_iccid)),
        )

    def suspend_number(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        reason: str,
        note: str,
        occurred_at: datetime | None = None,
    ) -> CommandResult:
        """Bar an ACTIVE number's service, with a reason code."""

        def handle(ctx: Context) -> _Outcome:
            num = self.get_number(number)
            num.suspend(reason, note, ctx)
            return _Outcome([num])

        args = {"number": number, "reason": reason, "note": note}
        return self._execute("SuspendNumber", request_id, actor, occurred_at, args, handle, (Number.create_id(number),))

    def resume_number(
        self, *, request_id: str, actor: str, number: str, note: str, occurred_at: datetime | None = None
    ) -> CommandResult:
        """Restore a SUSPENDED number's service."""

        def handle(ctx: Context) -> _Outcome:
            num = self.get_number(number)
            num.resume(note, ctx)
            return _Outcome([num])

        args = {"number": number, "note": note}
        return self._execute("ResumeNumber", request_id, actor, occurred_at, args, handle, (Number.create_id(number),))

    def disconnect_number(
        self, *, request_id: str, actor: str, number: str, reason: str, occurred_at: datetime | None = None
    ) -> CommandResult:
        """Close the tenure, free its SIM and identity slot, start quarantine and clearance."""

        def handle(ctx: Context) -> _Outcome:
            num = self.get_number(number)
            tenure = num.disconnect(reason, self.policy.quarantine_days, list(self.policy.required_holders), ctx)
            subscriber = self.get_subscriber(tenure.subscriber_id)
            holdings = self._holdings(subscriber.identity_key, ctx)
            holdings.close_tenure(tenure.tenure_id, ctx)
            sim = self._sim(tenure.iccid, ctx)
            sim.unassign(ctx)
            quarantine_until = tenure.quarantine_until or ctx.occurred_at
            data = {"tenure_id": str(tenure.tenure_id), "quarantine_until": quarantine_until.isoformat()}
            return _Outcome([num, holdings, sim], data)

        args = {"number": number, "reason": reason}
        return self._execute(
            "DisconnectNumber", request_id, actor, occurred_at, args, handle, (Number.create_id(number),)
        )

    def confirm_data_cleared(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        tenure_id: UUID,
        holder: str,
        evidence_ref: str,
        occurred_at: datetime | None = None,
    ) -> CommandResult:
        """Record one data holder's clearance of a closed tenure; returns the tenure's clearance."""

        def handle(ctx: Context) -> _Outcome:
            num = self.get_number(number)
            tenure = num.confirm_data_cleared(tenure_id, holder, evidence_ref, ctx)
            return _Outcome([num], {"clearance": tenure.clearance.value})

        args = {"number": number, "tenure_id": tenure_id, "holder": holder, "evidence_ref": evidence_ref}
        return self._execute(
            "ConfirmDataCleared", request_id, actor, occurred_at, args, handle, (Number.create_id(number),)
        )

    def release_number(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        override_reason: str,
        occurred_at: datetime | None = None,
    ) -> CommandResult:
        """Make a QUARANTINED number AVAILABLE once quarantine and clearance are complete (or overridden)."""

        def handle(ctx: Context) -> _Outcome:
            num = self.get_number(number)
            num.release(override_reason, ctx)
            return _Outcome([num])

        args = {"number": number, "override_reason": override_reason}
        return self._execute("ReleaseNumber", request_id, actor, occurred_at, args, handle, (Number.create_id(number),))

    def erase_subscriber_data(
        self,
        *,
        request_id: str,
        actor: str,
        subscriber_id: UUID,
        legal_basis: str,
        occurred_at: datetime | None = None,
    ) -> CommandResult:
        """Record the erasure, then destroy the subscriber's data key (crypto-shredding)."""

        def handle(ctx: Context) -> _Outcome:
            subscriber = self.get_subscriber(subscriber_id)
            subscriber.erase(legal_basis, ctx)
            holdings = self._holdings(subscriber.identity_key, ctx)
            holdings.record_erasure(subscriber_id, ctx)
            return _Outcome(
                [subscriber, holdings],
                before_save=lambda: self.vault.store.mark_erasure_pending(subscriber_id),
                after_save=lambda: self.vault.destroy(subscriber_id),
            )

        args = {"subscriber_id": subscriber_id, "legal_basis": legal_basis}
        return self._execute("EraseSubscriberData", request_id, actor, occurred_at, args, handle, (subscriber_id,))

    def save_events(self, *events: Any) -> list[Any]:
        """Record already collected events atomically. ``Application.save`` does the same after testing
        every argument against a runtime-checkable Protocol, which costs more than the insert.
        Streams that reached a multiple of the snapshot interval are then snapshotted."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        processing_event.events.extend(events)
        recordings = self._record(processing_event)
        self._notify(recordings)
        for stream_id, version in snapshots_due(events):
            self._take_snapshot(stream_id, version)
        return recordings

    def construct_snapshot_store(self) -> Any:
        """The library's snapshot store, fronted by the ids of the streams that have snapshots."""
        store = super().construct_snapshot_store()
        return SnapshotStore(store, stored_snapshot_ids(store))

    def _take_snapshot(self, stream_id: UUID, version: int) -> None:
        # The events are committed: a snapshot that fails only means a longer replay later.
        try:
            aggregate: Any = self.repository.get(stream_id, version=version)
        except Exception:
            log.warning("snapshot of stream %s at version %d not taken", stream_id, version, exc_info=True)
            return
        self._store_snapshot(aggregate)

    def _store_snapshot(self, aggregate: Any) -> None:
        """Snapshot an aggregate as loaded (from committed events). A snapshot already stored at that version
        (another process took it) is only learnt; any other failure is logged, never raised."""
        store: SnapshotStore = self.snapshots  # type: ignore[assignment]
        try:
            store.put([LedgerSnapshot.take(aggregate)])
        except IntegrityError:
            store.known.add(aggregate.id)
        except Exception:
            log.warning("snapshot of stream %s at version %d not taken", aggregate.id, aggregate.version, exc_info=True)

    def verify_snapshots(self, stream_ids: list[UUID] | None = None) -> list[tuple[UUID, int]]:
        """(stream id, version) of every snapshot (of all streams, or of these) that differs from a replay
        of its stream's events."""
        assert self.snapshots is not None
        store: SnapshotStore = self.snapshots  # type: ignore[assignment]
        bad = []
        for stream_id in sorted(stored_snapshot_ids(store.store) if stream_ids is None else stream_ids):
            for snapshot in store.store.get(stream_id):
                expected = replay(self.events, stream_id, snapshot.originator_version)
                if expected is None or comparable(snapshot.mutate(None)) != comparable(expected):  # type: ignore[attr-defined]
                    bad.append((stream_id, snapshot.originator_version))
        return bad

    # Staged execution, for bulk import: commands decided in memory, saved together.

    @property
    def staging(self) -> Staging | None:
        """This thread's import segment, if it is staging commands."""
        staging: Staging | None = getattr(self._local, "staging", None)
        return staging

    def begin_staging(self) -> Staging:
        """From now on this thread's commands are staged, not saved, until ``end_staging``."""
        staging = Staging()
        self._local.staging = staging
        return staging

    def expect_new_requests(self, request_ids: list[str]) -> None:
        """Look up in one query which of these request ids were recorded before, so staged commands with
        new ids skip one read each."""
        staging = self.staging
        if staging is None:
            return
        ids = [RequestRecord.create_id(r) for r in request_ids]
        staging.absent = set(ids) - self.reader.existing(ids)

    def end_staging(self) -> None:
        """Stop staging on this thread; anything not flushed is dropped."""
        self._local.staging = None

    def flush_staging(self) -> list[Any]:
        """Save every staged event in one transaction; returns the recordings in staged order.
        On any error nothing is saved and the staged work is dropped."""
        staging = self.staging
        if staging is None:
            raise RuntimeError("not staging")
        try:
            if not staging.events:
                return []
            if staging.keys:
                self.vault.store.put_many(list(staging.keys.items()))
            for hook in staging.before:
                hook()
            recordings = self.save_events(*staging.events)
            for hook in staging.after:
                hook()
        finally:
            staging.reset()
        position = recordings[-1].notification.id
        for listener in self.commit_listeners:
            listener(position)
        return recordings

    def _prefetch(self, stream_ids: list[UUID]) -> None:
        """Read the streams a command is about to load in one query (the library reads one stream per
        query); ``_load`` then takes each from here once. Streams with a snapshot load through it."""
        assert self.snapshots is not None
        known = self.snapshots.known  # type: ignore[attr-defined]
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
                self._store_snapshot(aggregate)
        self._local.prefetched = loaded

    def _load(self, aggregate_id: UUID) -> Any:
        staging = self.staging
        if staging is None:
            prefetched = getattr(self._local, "prefetched", None)
            if prefetched and aggregate_id in prefetched:
                aggregate = prefetched.pop(aggregate_id)
                if aggregate is None:
                    raise AggregateNotFoundError(aggregate_id)
                return aggregate
            return self.repository.get(aggregate_id)
        aggregate = staging.aggregates.get(aggregate_id)
        if aggregate is None:
            if aggregate_id in staging.absent:
                raise AggregateNotFoundError(aggregate_id)
            aggregate = self.repository.get(aggregate_id)
            staging.aggregates[aggregate_id] = aggregate
        staging.touched.append(aggregate)
        return aggregate

    def _exists(self, aggregate_id: UUID) -> bool:
        staging = self.staging
        if staging is not None:
            if aggregate_id in staging.aggregates:
                return True
            if aggregate_id in staging.absent:
                return False
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _commit(self, aggregates: list[Aggregate]) -> list[Any]:
        """Save the aggregates' new events atomically, with other commands' when group commit is on."""
        events = [e for aggregate in aggregates for e in aggregate.collect_events()]
        if self.committer is None:
            return self.save_events(*events)
        return self.committer.submit(events)

    def close(self) -> None:
        """Stop the group committer (finishing what is queued), then close the store."""
        if self.committer is not None:
            self.committer.close()
        super().close()

    def wait_for_commit(self, after: int, timeout: float) -> None:
        """Block until something past position ``after`` may have been committed, or the timeout passes."""
        with self.commits:
            if self.reader.max_position() <= after:
                self.commits.wait(timeout)

    def _notify_commit(self, _position: int) -> None:
        with self.commits:
            self.commits.notify_all()

    def record_personal_data_reads(self, subscriber_ids: list[UUID], number: str, purpose: str, actor: str) -> int:
        """Record, atomically and before disclosure, that ``actor`` read these subscribers' personal data."""
        if not subscriber_ids:
            return 0
        ctx_id = f"read-{uuid4()}"
        for attempt in range(MAX_ATTEMPTS):
            ctx = Context(actor=actor, request_id=ctx_id, occurred_at=self.clock.now())
            logs = []
            for sid in subscriber_ids:
                access_log = self._access_log(sid, ctx)
                access_log.record_read(number, purpose, ctx)
                logs.append(access_log)
            try:
                recordings = self._commit(list(logs))
            except IntegrityError:
                self._backoff(attempt)
                continue
            position = recordings[-1].notification.id
            for listener in self.commit_listeners:
                listener(position)
            return position
        raise errors.ConcurrencyConflict("could not record the personal data read; retry")

    def finish_pending_erasures(self) -> None:
        """Destroy keys of erasures recorded before a crash; drop intents that were never recorded."""
        for subscriber_id in self.vault.store.pending_erasures():
            try:
                erased = self.get_subscriber(subscriber_id).is_erased
            except errors.SubscriberNotFound:
                erased = False
            if erased:
                self.vault.destroy(subscriber_id)
                log.info("finished erasure of subscriber %s after restart", subscriber_id)
            else:
                self.vault.store.clear_pending(subscriber_id)

    # Loading.

    def get_number(self, number: str) -> Number:
        """The number's aggregate, or NumberNotFound."""
        try:
            number_aggregate: Number = self._load(Number.create_id(number))
        except AggregateNotFoundError:
            raise errors.NumberNotFound(number) from None
        return number_aggregate

    def get_subscriber(self, subscriber_id: UUID) -> Subscriber:
        """The subscriber's aggregate, or SubscriberNotFound."""
        try:
            subscriber: Aggregate = self._load(subscriber_id)
        except AggregateNotFoundError:
            raise errors.SubscriberNotFound(str(subscriber_id)) from None
        if not isinstance(subscriber, Subscriber):
            raise errors.SubscriberNotFound(str(subscriber_id))
        return subscriber

    def _holdings(self, identity_key: str, ctx: Context) -> IdentityHoldings:
        return self._get_or_create(
            IdentityHoldings,
            IdentityHoldings.create_id(identity_key),
            lambda: IdentityHoldings(identity_key=identity_key, **ctx.fields()),
        )

    def _access_log(self, subscriber_id: UUID, ctx: Context) -> AccessLog:
        return self._get_or_create(
            AccessLog,
            AccessLog.create_id(subscriber_id),
            lambda: AccessLog(subscriber_id=subscriber_id, **ctx.fields()),
        )

    def _sim(self, iccid: str, ctx: Context) -> SimCard:
        return self._get_or_create(SimCard, SimCard.create_id(iccid), lambda: SimCard(iccid=iccid, **ctx.fields()))

    def _get_or_create(self, cls: type[A], aggregate_id: UUID, create: Callable[[], A]) -> A:
        try:
            aggregate: Aggregate = self._load(aggregate_id)
        except AggregateNotFoundError:
            return create()
        if not isinstance(aggregate, cls):
            raise TypeError(f"stream {aggregate_id} is not a {cls.__name__}")
        return aggregate

    # The command pipeline: idempotency, rule checks, atomic save, bounded retry.

    def _execute(
        self,
        method: str,
        request_id: str,
        actor: str,
        occurred_at: datetime | None,
        args: dict[str, Any],
        handle: Callable[[Context], _Outcome],
        streams: tuple[UUID, ...] = (),
    ) -> CommandResult:
        """Run one command: its request record and ``streams`` (those it will load) are read together,
        then ``handle`` decides against them, then everything is saved atomically or retried."""
        if occurred_at is not None:
            self._check_not_future(occurred_at)
        payload = orjson.dumps(
            {"method": method, "args": args, "occurred_at": occurred_at},
            default=str,
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        )
        fingerprint = self.vault.fingerprint(payload)
        record_id = RequestRecord.create_id(request_id)
        for attempt in range(MAX_ATTEMPTS):
            if self.staging is None:
                self._prefetch([record_id, *streams])
            try:
                prior = self._prior_result(record_id, request_id, method, fingerprint)
                if prior is not None:
                    return prior
                ctx = Context(actor=actor, request_id=request_id, occurred_at=occurred_at or self.clock.now())
                outcome = handle(ctx)
            finally:
                self._local.prefetched = None
            record = RequestRecord(method=method, fingerprint=fingerprint, result=outcome.data, **ctx.fields())
            staging = self.staging
            if staging is not None:
                return staging.stage([*outcome.aggregates, record], outcome)
            if outcome.before_save is not None:
                outcome.before_save()
            try:
                recordings = self._commit([*outcome.aggregates, record])
            except IntegrityError:
                # Another writer changed one of these streams (or recorded this request) first.
                self._backoff(attempt)
                continue
            except OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                self._backoff(attempt)
                continue
            if outcome.after_save is not None:
                outcome.after_save()
            position = recordings[-1].notification.id
            for listener in self.commit_listeners:
                listener(position)
            return CommandResult(position=position, data=outcome.data)
        raise errors.ConcurrencyConflict(
            f"{method} still conflicted with concurrent writers after {MAX_ATTEMPTS} attempts; retry"
        )

    def _prior_result(self, record_id: UUID, request_id: str, method: str, fingerprint: str) -> CommandResult | None:
        try:
            prior: Aggregate = self._load(record_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(prior, RequestRecord):
            raise TypeError(f"stream {record_id} is not a request record")
        if prior.method != method or prior.fingerprint != fingerprint:
            raise errors.RequestIdReused(request_id, prior.method)
        position = self.reader.position_of(record_id, 1) or 0
        return CommandResult(position=position, data=dict(prior.result), replayed=True)

    def _check_not_future(self, occurred_at: datetime) -> None:
        limit = self.clock.now() + timedelta(seconds=self.policy.max_clock_skew_seconds)
        if occurred_at > limit:
            raise errors.InvalidArgument(
                [("occurred_at", f"{occurred_at.isoformat()} is in the future (now {self.clock.now().isoformat()})")],
                reason="OCCURRED_AT_IN_FUTURE",
            )

    @staticmethod
    def _backoff(attempt: int) -> None:
        time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))
