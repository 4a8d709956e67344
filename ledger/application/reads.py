"""Compliance reads: a number's history (with or without personal data, each disclosure recorded) and its
state at a moment, replayed from its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.domain import errors
from ledger.domain.access import AccessLog
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber, sealed_personal_data
from ledger.domain.tenure import Tenure

if TYPE_CHECKING:
    from eventsourcing.domain import DomainEventProtocol

    from ledger.application.app import LedgerApplication

# Fields every event has; they get their own slots in the API, not the event's data.
BASE_FIELDS = frozenset(
    {
        "originator_id",
        "originator_version",
        "timestamp",
        "occurred_at",
        "actor",
        "request_id",
        "originator_topic",
        "personal_data",
        "identity_key",
    }
)


# The recorded purpose of a read of restricted data (an erasure held by the retention period) starts so.
LEGAL_HOLD_PREFIX = "legal hold: "


class StreamType(StrEnum):
    """Which kind of stream an event of a history belongs to."""

    NUMBER = "number"
    SUBSCRIBER = "subscriber"
    ACCESS = "access"


class PersonalState(StrEnum):
    """Whether an event's personal data is shown."""

    NONE = "NONE"
    WITHHELD = "WITHHELD"
    DISCLOSED = "DISCLOSED"
    ERASED = "ERASED"


@dataclass(frozen=True)
class HistoryItem:
    """One event of a number's history, with its position and the personal data the caller may see."""

    position: int
    event: DomainEventProtocol[Any]
    stream_type: StreamType
    type_name: str
    number: str
    subscriber_id: UUID | None
    personal_state: str
    personal_data: dict[str, Any] | None

    def data(self) -> dict[str, Any]:
        """The event's own fields, without the common ones and without ciphertext."""
        return {k: v for k, v in vars(self.event).items() if k not in BASE_FIELDS}


@dataclass(frozen=True)
class NumberStateView:
    """A number's state at a moment, rebuilt from its events."""

    number: str
    status: str
    tenure: Tenure | None
    subscriber_id: UUID | None
    verified: bool
    as_of: datetime
    suspension_reason: str | None
    quarantine_until: datetime | None
    tenure_count: int
    version: int


def number_history(
    app: LedgerApplication,
    number: str,
    include_personal_data: bool,
    actor: str = "",
    purpose: str = "",
    legal_hold: bool = False,
) -> list[HistoryItem]:
    """Every event of the number and of the subscribers who held it (with the record of who read their
    personal data), in ledger order. Disclosed personal data is recorded as read by ``actor`` for
    ``purpose`` before it is returned. The data of a subscriber whose erasure the retention period holds
    is withheld unless the read is for a legal hold (``legal_hold``), recorded as such."""
    current = app.get_number(number)
    holder_ids = list(dict.fromkeys(t.subscriber_id for t in current.tenures))
    subscriber_of_log = {AccessLog.create_id(sid): sid for sid in holder_ids}
    access_ids = list(subscriber_of_log)
    stream_ids = [current.id, *holder_ids, *access_ids]
    erased: set[UUID] = set()
    restricted: set[UUID] = set()
    items: list[HistoryItem] = []
    holder_by_tenure: dict[UUID, UUID] = {}
    holder: UUID | None = None
    positioned = app.reader.read_streams(stream_ids)
    decoded = [(p.position, app.mapper.to_domain_event(p.stored)) for p in positioned]
    for _, ev in decoded:
        if isinstance(ev, Subscriber.PersonalDataErased):
            erased.add(ev.originator_id)
        elif isinstance(ev, Subscriber.ErasureRequested):
            restricted.add(ev.originator_id)
    for position, ev in decoded:
        if isinstance(ev, Number.Event):
            if isinstance(ev, Number.Activated):
                holder_by_tenure[ev.tenure_id] = ev.subscriber_id
                holder = ev.subscriber_id
            tenure_id = getattr(ev, "tenure_id", None)
            subscriber_id = holder_by_tenure.get(tenure_id) if tenure_id else holder
            if isinstance(ev, (Number.Disconnected, Number.Released, Number.PortedOut)):
                holder = None
            items.append(
                HistoryItem(
                    position, ev, StreamType.NUMBER, type_name(ev), number, subscriber_id, PersonalState.NONE, None
                )
            )
        elif isinstance(ev, Subscriber.Event):
            sid = ev.originator_id
            state, personal = PersonalState.NONE, None
            token = sealed_personal_data(ev)
            if token is not None:
                wanted = include_personal_data and (legal_hold or sid not in restricted)
                state, personal = _personal(app, sid, token, wanted, sid in erased)
            items.append(HistoryItem(position, ev, StreamType.SUBSCRIBER, type_name(ev), number, sid, state, personal))
        elif isinstance(ev, AccessLog.Event):
            reader_of = subscriber_of_log.get(ev.originator_id)
            items.append(
                HistoryItem(position, ev, StreamType.ACCESS, type_name(ev), number, reader_of, PersonalState.NONE, None)
            )
    disclosed = [i.subscriber_id for i in items if i.personal_state == PersonalState.DISCLOSED and i.subscriber_id]
    if disclosed:
        held = [sid for sid in dict.fromkeys(disclosed) if sid in restricted and sid not in erased]
        others = [sid for sid in dict.fromkeys(disclosed) if sid not in held]
        if others:
            app.record_personal_data_reads(others, number, purpose, actor)
        if held:
            app.record_personal_data_reads(held, number, f"{LEGAL_HOLD_PREFIX}{purpose}", actor)
    return items


def _personal(
    app: LedgerApplication, subscriber_id: UUID, token: str, wanted: bool, erased: bool
) -> tuple[PersonalState, dict[str, Any] | None]:
    if erased:
        return PersonalState.ERASED, None
    if not wanted:
        return PersonalState.WITHHELD, None
    data = app.vault.open(subscriber_id, token)
    if data is None:
        return PersonalState.ERASED, None
    return PersonalState.DISCLOSED, data


def number_state(app: LedgerApplication, number: str, as_of: datetime | None) -> NumberStateView:
    """The number's state at ``as_of`` (now when None), by replaying its events up to that moment."""
    moment = as_of or app.clock.now()
    latest = app.get_number(number)
    if as_of is None or latest.last_occurred_at <= moment:
        num = latest
    else:
        events = app.repository.event_store.get(latest.id)
        version = 0
        for ev in events:
            if ev.occurred_at > moment:  # type: ignore[attr-defined]
                break
            version = ev.originator_version
        if version == 0:
            raise errors.NumberNotFound(f"{number} (not provisioned at {moment.isoformat()})")
        num = app.repository.get(latest.id, version=version)
    tenure = num.current_tenure
    verified = False
    if tenure is not None:
        subscriber = app.get_subscriber(tenure.subscriber_id)
        erased_then = subscriber.erased_at is not None and subscriber.erased_at <= moment
        verified = subscriber.is_verified_at(moment) and not erased_then
    last_closed = num.closed_tenures()[-1] if num.closed_tenures() else None
    quarantine_until = last_closed.quarantine_until if num.status == "QUARANTINED" and last_closed else None
    return NumberStateView(
        number=num.number,
        status=str(num.status),
        tenure=tenure,
        subscriber_id=tenure.subscriber_id if tenure else None,
        verified=verified,
        as_of=moment,
        suspension_reason=num.suspension_reason,
        quarantine_until=quarantine_until,
        tenure_count=len(num.tenures),
        version=num.version,
    )


def type_name(ev: object) -> str:
    """The API's name of an event type."""
    # "Number.Activated" -> "NumberActivated"
    return type(ev).__qualname__.replace(".", "")
