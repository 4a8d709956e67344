"""Compliance reads: a number's history (with or without personal data), its state at a moment, the
verification of the hash chains, the snapshots and the registrations' data keys, and what the regulator
files are drawn from (the reports a jurisdiction was issued, the permanent disconnections in a range)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from ledger.adapters.log import holders_in
from ledger.domain import errors
from ledger.domain.access import AccessLog
from ledger.domain.indexes import DisconnectionReports, IssuedReport
from ledger.domain.number import Number
from ledger.domain.rules import DisconnectReason
from ledger.domain.subscriber import PERSONAL_DATA_TOPICS, Subscriber, sealed_personal_data
from ledger.domain.tenure import Tenure
from ledger.integrity import IntegrityReport, verify_chain, verify_streams
from ledger.proofs.batches import UNAUTHENTICATED
from ledger.proofs.verify import check_batches, check_ledger, check_streams

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from eventsourcing.domain import DomainEventProtocol

    from ledger.adapters import EventLog
    from ledger.application.app import LedgerApplication
    from ledger.keys.tables import KeyTables

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


def keyless_registrations(reader: EventLog, keys: KeyTables, chunk: int = 2000) -> list[tuple[int, str]]:
    """(position, subscriber id) of every registration whose data key is lost: neither stored in the key
    store nor destroyed by an erasure (a tombstone), so its personal data can no longer be opened; in
    position order. Only which rows exist is read, never a key."""
    found: list[tuple[int, str]] = []
    batch: list[tuple[int, UUID]] = []

    def flush() -> None:
        missing = set(keys.keyless([sid for _, sid in batch]))
        found.extend((position, str(sid)) for position, sid in batch if sid in missing)
        batch.clear()

    # A stream whose first event carries personal data is a registration: its key was made with it.
    for topic in sorted(PERSONAL_DATA_TOPICS):
        for item in reader.first_events(topic):
            batch.append(item)
            if len(batch) >= chunk:
                flush()
    if batch:
        flush()
    found.sort()
    return found


def with_keyless(report: IntegrityReport, keyless: list[tuple[int, str]]) -> IntegrityReport:
    """A whole-ledger verification's report with its keyless registrations: not ok when there is any, the
    first one's position the first bad position unless the report names a problem already."""
    if not keyless:
        return report
    report = replace(report, keyless_registrations=tuple(keyless))
    if not report.ok:
        return report
    position, sid = keyless[0]
    problem = (
        f"{len(keyless)} registration(s) have neither a stored data key nor a tombstone: their personal data "
        f"can no longer be opened (the first at position {position}, subscriber {sid})"
    )
    return replace(report, ok=False, first_bad_position=position, stream=UUID(sid).hex, problem=problem)


def type_name(ev: object) -> str:
    """The API's name of an event type."""
    # "Number.Activated" -> "NumberActivated"
    return type(ev).__qualname__.replace(".", "")


def verify_integrity(
    app: LedgerApplication, number: str | None, up_to: int = 0, public: Ed25519PublicKey | None = None
) -> IntegrityReport:
    """Recompute the hash chains and check the Merkle tree and signed heads (verified with ``public``):
    the whole ledger, or the streams of one number, its holders and their access logs, proven complete
    as of the latest signed head. Snapshots (of the whole ledger, or of the number) must match a replay of
    their streams' events. Damaged events are reported, never raised."""
    if not number:
        chain = report = verify_chain(app.reader.chained(), up_to)
        if report.ok and app.proofs is not None:
            report = check_ledger(report, app.proofs, app.reader, public, up_to)
        if chain.ok:
            report = check_batches(report, app.batch_key, app.batches, app.reader, up_to=up_to)
        snapshot_ids = None
    else:
        number_id = Number.create_id(number)
        number_events = app.reader.stream_events([number_id]).get(number_id)
        if not number_events:
            raise errors.NumberNotFound(number)
        holders = holders_in(number_events)
        streams = [number_id, *holders, *(AccessLog.create_id(h) for h in holders)]
        chained = app.reader.chained_streams(streams)
        chain = report = verify_streams(iter(chained))
        if report.ok and app.proofs is not None:
            report = check_streams(report, app.proofs, app.reader, streams, chained, public)
        if chain.ok:
            report = check_batches(report, app.batch_key, app.batches, app.reader, events=chained)
        snapshot_ids = [number_id]
    if not report.ok and UNAUTHENTICATED in report.problem:
        app.refuse_writes(report.problem)
    if not report.ok or (up_to and not number):
        return report
    try:
        bad = app.verify_snapshots(snapshot_ids)
    except Exception as e:  # a stream that verified but does not replay: report it, never fail the call
        return replace(report, ok=False, problem=f"the events do not replay: {e}")
    if bad:
        stream_id, version = bad[0]
        problem = (
            f"the snapshot of stream {stream_id} at version {version} does not match its events "
            f"({len(bad)} snapshot(s) differ; snapshots are a cache and may be deleted)"
        )
        return replace(report, ok=False, problem=problem)
    return report


# The regulator's files.
#
# What the regulator files are drawn from: the reports a jurisdiction was issued and the permanent
# disconnections recorded in a range of positions.
#
# A permanent disconnection is a tenure closed by DisconnectNumber: a port-out (``PortOutNumber``, or a
# disconnection with reason PORTED_OUT), a return (``ReturnNumber``: the recipient operator disconnected a
# number ported out from here, which is theirs to report) and a suspension are not. A number ported in and
# disconnected here is one: the Reassigned Numbers Database order has each provider report "the date of the
# most recent permanent disconnection for each number allocated to or ported to that provider" (FCC 18-177,
# 33 FCC Rcd 12024 para. 35, as quoted in DA 21-67), monthly, "data for numbers permanently disconnected that
# were not submitted in the service provider's prior reports" (DA 21-134; 47 CFR 64.1200(l)(2)).

MAX_PAGE = 100_000
_DISCONNECTED = get_topic(Number.Disconnected)


@dataclass(frozen=True, slots=True)
class PermanentDisconnection:
    """One permanent disconnection: the number, where it was recorded, when it happened and why."""

    number: str
    position: int
    occurred_at: datetime
    reason: str


def issued_reports(app: LedgerApplication, jurisdiction: str) -> list[IssuedReport]:
    """The reports issued for the jurisdiction, oldest first (none yet: empty)."""
    try:
        record: Any = app.repository.get(DisconnectionReports.create_id(jurisdiction))
    except AggregateNotFoundError:
        return []
    return list(record.reports)


def permanent_disconnections(
    app: LedgerApplication, jurisdiction: str, from_position: int, to_position: int, page_size: int = MAX_PAGE
) -> tuple[list[PermanentDisconnection], int]:
    """The permanent disconnections of the jurisdiction's numbers recorded from ``from_position`` on, reading
    at most ``page_size`` positions and none after ``to_position``; and the last position read."""
    stop = min(to_position, from_position + page_size - 1)
    found = []
    numbers: dict[Any, str] = {}
    for n in app.recorder.select_notifications(start=from_position, limit=page_size, stop=stop, topics=[_DISCONNECTED]):
        event: Any = app.mapper.to_domain_event(n)
        if event.reason == DisconnectReason.PORTED_OUT:
            continue
        number = numbers.get(event.originator_id)
        if number is None:
            number = numbers[event.originator_id] = app.repository.get(event.originator_id, version=1).number
        # Calling codes are a prefix code (ITU-T E.164), so the number's own code is the one it starts with.
        if number.startswith(jurisdiction):
            found.append(PermanentDisconnection(number, n.id, event.occurred_at, str(event.reason)))
    return found, stop
