"""Units of work: how a command reads the streams it decides on and where its events go.

A command is decided against one unit of work, passed to it explicitly:

- ``ImmediateUnitOfWork`` (one per command attempt): the streams the command will load are read in one
  query before it is decided, and its events are saved in one atomic transaction (shared with other
  commands' under group commit) as soon as it is decided;
- ``StagedUnitOfWork`` (one per import stream): commands are decided in memory against the aggregates
  earlier commands of the segment left, and their events, new data keys and erasure hooks wait for
  ``flush``, which saves the whole segment in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from ledger.domain import errors
from ledger.domain.access import AccessLog
from ledger.domain.indexes import DisconnectionReports, IdentityHoldings, RequestRecord, SimCard
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber

if TYPE_CHECKING:
    from ledger.domain.context import Context
    from ledger.keys.identity import SaltChange
    from ledger.keys.vault import PersonalDataVault
    from ledger.policy import Policy

A = TypeVar("A", bound=Aggregate)


class KeyConflictError(IntegrityError):
    """Raised when a staged segment's new data key lost to the one another writer stored first: the segment's
    data was sealed under a key that is not stored, so none of it is saved (its commands run again)."""


class Clock(Protocol):
    """Source of the current time (a fake one in tests)."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class Companions:
    """Streams a command loads after the ones it names, learnt from earlier loads, so the next command
    reads them in its one query: a subscriber's identity holdings (the identity key is fixed when the
    subscriber is registered, so the pairing never goes stale, whichever process or writer changes the
    streams; only ids are kept, the streams' events are read fresh each time). Bounded: forgotten all
    at once when full."""

    LIMIT = 32_768

    def __init__(self) -> None:
        self._of: dict[UUID, UUID] = {}

    def learn(self, stream_id: UUID, companion: UUID) -> None:
        """``companion`` is loaded whenever ``stream_id`` is."""
        if len(self._of) >= self.LIMIT:
            self._of.clear()
        self._of[stream_id] = companion

    def knows(self, stream_id: UUID) -> bool:
        """Whether the stream's companion is known."""
        return stream_id in self._of

    def of(self, stream_ids: list[UUID]) -> list[UUID]:
        """The known companions of these streams."""
        of = self._of
        return [c for c in (of.get(s) for s in stream_ids) if c is not None]


class Ledger(Protocol):
    """What units of work, the pipeline and the handlers need of the ledger (``LedgerApplication`` is one):
    loading streams, saving events, the clock, the operator's policy and the personal-data vault."""

    vault: PersonalDataVault
    policy: Policy
    clock: Clock
    companions: Companions

    def load(self, aggregate_id: UUID) -> Any:
        """A stream's aggregate as stored; AggregateNotFoundError when it has no events."""
        ...

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether the stream has any event."""
        ...

    def existing(self, stream_ids: list[UUID]) -> set[UUID]:
        """Which of these streams have events (one query)."""
        ...

    def prefetch(self, stream_ids: list[UUID]) -> dict[UUID, Any]:
        """These streams' aggregates read in one query (None for a stream without events); streams that
        load through a snapshot are left out."""
        ...

    def commit(self, aggregates: list[Aggregate]) -> list[Any]:
        """Save the aggregates' new events atomically; returns the recordings."""
        ...

    def save_events(self, *events: Any) -> list[Any]:
        """Save already collected events atomically; returns the recordings."""
        ...

    def published(self, position: int) -> None:
        """Everything up to ``position`` is committed."""
        ...

    def position_of(self, stream_id: UUID, version: int) -> int | None:
        """The ledger position of a stream's event at this version."""
        ...


@dataclass(frozen=True)
class CommandResult:
    """What a command returns: its values and the ledger position of its last event."""

    position: int
    data: dict[str, Any]
    replayed: bool = False
    # Inside a staged import: index of the command's last event in the segment (position comes at flush).
    staged_at: int = -1


@dataclass
class Outcome:
    """A decided command: the aggregates it changed, its result values, and what must happen to keys
    just before and just after its events are saved."""

    aggregates: list[Aggregate]
    data: dict[str, Any] = field(default_factory=dict)
    before_save: Callable[[], None] | None = None
    after_save: Callable[[], None] | None = None


class UnitOfWork:
    """What a command reads and writes through: loading (``number``, ``subscriber``, the index streams),
    data keys, and ``save``. Subclasses say where aggregates come from and where events go."""

    def __init__(self, app: Ledger) -> None:
        self.app = app

    def begin(self, stream_ids: list[UUID]) -> None:
        """The command is about to load these streams."""

    def end(self) -> None:
        """The command is decided (or refused)."""

    def load(self, aggregate_id: UUID) -> Any:
        """A stream's aggregate; AggregateNotFoundError when it has no events."""
        return self.app.load(aggregate_id)

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether the stream has any event."""
        return self.app.exists(aggregate_id)

    def ensure_data_key(self, subscriber_id: UUID, salt: SaltChange | None = None) -> bytes:
        """The subscriber's data key, stored before anything is sealed under it (made once: concurrent or
        retried registrations all get the one stored first), with the identity salt change stored in the
        same key store transaction. Seal under the key returned."""
        vault = self.app.vault
        data_key = vault.stored_key(subscriber_id)
        if data_key is None:
            return vault.store_keys([vault.new_key(subscriber_id)], [salt] if salt else [])[subscriber_id]
        if salt is not None:
            vault.store_keys([], [salt])
        return data_key

    def save(self, outcome: Outcome, record: RequestRecord) -> CommandResult:
        """Save (or hold) a decided command's events with its request record."""
        raise NotImplementedError

    def number(self, number: str) -> Number:
        """The number's aggregate, or NumberNotFound."""
        try:
            number_aggregate: Number = self.load(Number.create_id(number))
        except AggregateNotFoundError:
            raise errors.NumberNotFound(number) from None
        return number_aggregate

    def subscriber(self, subscriber_id: UUID) -> Subscriber:
        """The subscriber's aggregate, or SubscriberNotFound."""
        try:
            subscriber: Aggregate = self.load(subscriber_id)
        except AggregateNotFoundError:
            raise errors.SubscriberNotFound(str(subscriber_id)) from None
        if not isinstance(subscriber, Subscriber):
            raise errors.SubscriberNotFound(str(subscriber_id))
        if not self.app.companions.knows(subscriber_id):
            self.app.companions.learn(subscriber_id, IdentityHoldings.create_id(subscriber.identity_key))
        return subscriber

    def holdings(self, identity_key: str, ctx: Context) -> IdentityHoldings:
        """The identity's holdings stream (created on first use)."""
        return self._get_or_create(
            IdentityHoldings,
            IdentityHoldings.create_id(identity_key),
            lambda: IdentityHoldings(identity_key=identity_key, **ctx.fields()),
        )

    def access_log(self, subscriber_id: UUID, ctx: Context) -> AccessLog:
        """The subscriber's access log (created on first use)."""
        return self._get_or_create(
            AccessLog,
            AccessLog.create_id(subscriber_id),
            lambda: AccessLog(subscriber_id=subscriber_id, **ctx.fields()),
        )

    def disconnection_reports(self, jurisdiction: str, ctx: Context) -> DisconnectionReports:
        """The jurisdiction's record of disconnection reports (created on first use)."""
        return self._get_or_create(
            DisconnectionReports,
            DisconnectionReports.create_id(jurisdiction),
            lambda: DisconnectionReports(jurisdiction=jurisdiction, **ctx.fields()),
        )

    def sim(self, iccid: str, ctx: Context) -> SimCard:
        """The SIM's stream (created on first use)."""
        return self._get_or_create(SimCard, SimCard.create_id(iccid), lambda: SimCard(iccid=iccid, **ctx.fields()))

    def request_record(self, record_id: UUID) -> RequestRecord | None:
        """The record of an earlier request with this id, or None."""
        try:
            prior: Aggregate = self.load(record_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(prior, RequestRecord):
            raise TypeError(f"stream {record_id} is not a request record")
        return prior

    def _get_or_create(self, cls: type[A], aggregate_id: UUID, create: Callable[[], A]) -> A:
        try:
            aggregate: Aggregate = self.load(aggregate_id)
        except AggregateNotFoundError:
            return create()
        if not isinstance(aggregate, cls):
            raise TypeError(f"stream {aggregate_id} is not a {cls.__name__}")
        return aggregate


class ImmediateUnitOfWork(UnitOfWork):
    """One command attempt saved on its own (or grouped with concurrent ones): its streams are read in one
    query first (the library reads one stream per query) and its events saved when it is decided."""

    def __init__(self, app: Ledger) -> None:
        super().__init__(app)
        self._prefetched: dict[UUID, Any] = {}

    def begin(self, stream_ids: list[UUID]) -> None:
        """Read the streams, and the ones known to be loaded with them, in one query; ``load`` then takes
        each from here once."""
        self._prefetched = self.app.prefetch([*stream_ids, *self.app.companions.of(stream_ids)])

    def end(self) -> None:
        """Drop what was read and not loaded."""
        self._prefetched.clear()

    def load(self, aggregate_id: UUID) -> Any:
        """The prefetched aggregate (once), else the repository's."""
        if aggregate_id in self._prefetched:
            aggregate = self._prefetched.pop(aggregate_id)
            if aggregate is None:
                raise AggregateNotFoundError(aggregate_id)
            return aggregate
        return self.app.load(aggregate_id)

    def save(self, outcome: Outcome, record: RequestRecord) -> CommandResult:
        """Save atomically; IntegrityError when another writer changed one of the streams first."""
        if outcome.before_save is not None:
            outcome.before_save()
        recordings = self.app.commit([*outcome.aggregates, record])
        if outcome.after_save is not None:
            outcome.after_save()
        position: int = recordings[-1].notification.id
        self.app.published(position)
        return CommandResult(position=position, data=outcome.data)


class StagedUnitOfWork(UnitOfWork):
    """An import segment's work held in memory until ``flush`` saves it in one transaction.

    Aggregates loaded or changed by the segment's commands stay here, so later commands of the segment
    see the earlier ones' effects; the segment's events, new data keys and erasure hooks wait for the
    flush. The aggregates are dropped at every flush, so no command is decided on state older than its
    segment; a concurrent writer's change to any of them makes the flush conflict.
    """

    def __init__(self, app: Ledger) -> None:
        super().__init__(app)
        self.aggregates: dict[UUID, Aggregate] = {}
        self.events: list[Any] = []
        self.keys: dict[UUID, bytes] = {}
        self.salts: list[SaltChange] = []
        self.before: list[Callable[[], None]] = []
        self.after: list[Callable[[], None]] = []
        self.touched: list[Aggregate] = []
        # Streams known to have no events yet (checked in bulk); loading one fails without a query.
        self.absent: set[UUID] = set()

    def expect_new_requests(self, request_ids: list[str]) -> None:
        """Look up in one query which of these request ids were recorded before, so commands with new ids
        skip one read each."""
        ids = [RequestRecord.create_id(r) for r in request_ids]
        self.absent = set(ids) - self.app.existing(ids)

    def begin(self, stream_ids: list[UUID]) -> None:
        """A new command of the segment: ``dirty`` will look at what it touches."""
        self.touched.clear()

    def load(self, aggregate_id: UUID) -> Any:
        """The segment's copy of the aggregate, loaded once."""
        aggregate = self.aggregates.get(aggregate_id)
        if aggregate is None:
            if aggregate_id in self.absent:
                raise AggregateNotFoundError(aggregate_id)
            aggregate = self.app.load(aggregate_id)
            self.aggregates[aggregate_id] = aggregate
        self.touched.append(aggregate)
        return aggregate

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether the stream has events, saved or held here."""
        if aggregate_id in self.aggregates:
            return True
        if aggregate_id in self.absent:
            return False
        return super().exists(aggregate_id)

    def ensure_data_key(self, subscriber_id: UUID, salt: SaltChange | None = None) -> bytes:
        """The subscriber's stored data key, or a new one held for the flush (with the identity salt change),
        which stores it before the segment's events and refuses the flush if another writer stored a key
        for the subscriber meanwhile (the data sealed here would not open with it)."""
        if salt is not None:
            self.salts.append(salt)
        held = self.keys.get(subscriber_id)
        if held is not None:
            return held
        data_key = self.app.vault.stored_key(subscriber_id)
        if data_key is None:
            data_key = self.app.vault.new_key(subscriber_id)[1]
            self.keys[subscriber_id] = data_key
        return data_key

    def save(self, outcome: Outcome, record: RequestRecord) -> CommandResult:
        """Hold one decided command's events; its position is known after the flush."""
        for aggregate in [*outcome.aggregates, record]:
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

    def flush(self) -> list[Any]:
        """Save every held event in one transaction; returns the recordings in staged order. On any error
        nothing is saved and the held work is dropped."""
        try:
            if not self.events:
                return []
            if self.keys or self.salts:
                stored = self.app.vault.store_keys(list(self.keys.items()), self.salts)
                if any(stored[sid] != key for sid, key in self.keys.items()):
                    raise KeyConflictError("another writer stored a data key of this segment's subscribers first")
            for hook in self.before:
                hook()
            recordings = self.app.save_events(*self.events)
            for hook in self.after:
                hook()
        finally:
            self.reset()
        self.app.published(recordings[-1].notification.id)
        return recordings

    def reset(self) -> None:
        """Forget everything held (after a flush, or when the segment is abandoned)."""
        self.aggregates.clear()
        self.events.clear()
        self.keys.clear()
        self.salts.clear()
        self.before.clear()
        self.after.clear()
        self.touched.clear()
