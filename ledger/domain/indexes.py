"""Consistency boundaries that span numbers: holdings per identity, SIM assignment, request records, and
the disconnection reports a jurisdiction was issued.

Each is a small aggregate whose version changes with every update, so that two concurrent commands
touching the same identity, SIM or request id conflict on save and one of them is retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import errors
from ledger.domain.base import LedgerEvent, check_order, stable_id

if TYPE_CHECKING:
    from ledger.domain.context import Context


class IdentityHoldings(Aggregate):
    """Open tenures of one identity key (one person), to enforce the per-identity number cap."""

    class Event(LedgerEvent):
        """Base class of the holdings' events."""

    class Opened(Event, Aggregate.Created):
        """The identity key was first seen."""

        identity_key: str

    class TenureOpened(Event):
        """A tenure of this identity began."""

        tenure_id: UUID
        number: str
        subscriber_id: UUID

    class TenureClosed(Event):
        """A tenure of this identity ended."""

        tenure_id: UUID

    class SubscriberErased(Event):
        """A subscriber of this identity was erased (serialises erasure against activation)."""

        subscriber_id: UUID

    @staticmethod
    def create_id(identity_key: str, **_: object) -> UUID:
        """Stream id of an identity key."""
        return stable_id(f"/identities/{identity_key}")

    @event(Opened)
    def __init__(self, identity_key: str, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.identity_key = identity_key
        self.open_tenures: dict[UUID, tuple[str, UUID]] = {}
        # When each subscriber's latest tenure under this identity ended (the retention period runs from it).
        self.service_ended: dict[UUID, datetime] = {}

    def open_count(self) -> int:
        """Active or suspended tenures held under this identity."""
        return len(self.open_tenures)

    def tenures_of(self, subscriber_id: UUID) -> list[str]:
        """Numbers held by one subscriber of this identity."""
        return [number for number, sid in self.open_tenures.values() if sid == subscriber_id]

    def open_tenure(self, tenure_id: UUID, number: str, subscriber_id: UUID, cap: int, ctx: Context) -> None:
        """Count a new tenure, refusing one beyond the cap."""
        if self.open_count() >= cap:
            raise errors.IdentityNumberCap(
                f"identity already holds {self.open_count()} numbers (cap {cap})", cap=str(cap)
            )
        self._tenure_opened(tenure_id=tenure_id, number=number, subscriber_id=subscriber_id, **ctx.fields())

    def close_tenure(self, tenure_id: UUID, ctx: Context) -> None:
        """Stop counting a tenure."""
        if tenure_id in self.open_tenures:
            self._tenure_closed(tenure_id=tenure_id, **ctx.fields())

    def record_erasure(self, subscriber_id: UUID, ctx: Context) -> None:
        """Refuse erasure while the subscriber holds a number; otherwise record it."""
        held = self.tenures_of(subscriber_id)
        if held:
            raise errors.SubscriberHasOpenTenure(
                f"subscriber {subscriber_id} still holds {', '.join(sorted(held))}; disconnect first",
                numbers=",".join(sorted(held)),
            )
        self._subscriber_erased(subscriber_id=subscriber_id, **ctx.fields())

    @event(TenureOpened)
    def _tenure_opened(
        self, tenure_id: UUID, number: str, subscriber_id: UUID, occurred_at: datetime, actor: str, request_id: str
    ) -> None:
        self.open_tenures[tenure_id] = (number, subscriber_id)

    @event(TenureClosed)
    def _tenure_closed(self, tenure_id: UUID, occurred_at: datetime, actor: str, request_id: str) -> None:
        closed = self.open_tenures.pop(tenure_id, None)
        if closed is not None:
            self.service_ended[closed[1]] = occurred_at

    @event(SubscriberErased)
    def _subscriber_erased(self, subscriber_id: UUID, occurred_at: datetime, actor: str, request_id: str) -> None:
        pass


class SimCard(Aggregate):
    """A SIM (by ICCID) and the number it currently serves, so one SIM serves one open tenure."""

    class Event(LedgerEvent):
        """Base class of the SIM's events."""

    class Registered(Event, Aggregate.Created):
        """The ICCID was first seen."""

        iccid: str

    class Assigned(Event):
        """The SIM began serving a tenure."""

        number: str
        tenure_id: UUID

    class Unassigned(Event):
        """The SIM stopped serving its tenure."""

        number: str
        tenure_id: UUID

    @staticmethod
    def create_id(iccid: str, **_: object) -> UUID:
        """Stream id of an ICCID."""
        return stable_id(f"/iccids/{iccid}")

    @event(Registered)
    def __init__(self, iccid: str, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.iccid = iccid
        self.number: str | None = None
        self.tenure_id: UUID | None = None

    def assign(self, number: str, tenure_id: UUID, ctx: Context) -> None:
        """Serve a tenure; refused while the SIM serves another number's open tenure."""
        if self.number is not None:
            raise errors.IccidInUse(
                f"ICCID {self.iccid} already serves an open tenure of {self.number}", number=self.number
            )
        self._assigned(number=number, tenure_id=tenure_id, **ctx.fields())

    def unassign(self, ctx: Context) -> None:
        """Stop serving the current tenure."""
        if self.number is not None and self.tenure_id is not None:
            self._unassigned(number=self.number, tenure_id=self.tenure_id, **ctx.fields())

    @event(Assigned)
    def _assigned(self, number: str, tenure_id: UUID, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.number = number
        self.tenure_id = tenure_id

    @event(Unassigned)
    def _unassigned(self, number: str, tenure_id: UUID, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.number = None
        self.tenure_id = None


class RequestRecord(Aggregate):
    """The first result of a request_id, so a retry returns it and records nothing new."""

    class Event(LedgerEvent):
        """Base class of the record's events."""

    class Recorded(Event, Aggregate.Created):
        """A request was handled; ``fingerprint`` is a keyed hash of its content."""

        method: str
        fingerprint: str
        result: dict[str, Any]

    @staticmethod
    def create_id(request_id: str, **_: object) -> UUID:
        """Stream id of a request id."""
        return stable_id(f"/requests/{request_id}")

    @event(Recorded)
    def __init__(
        self,
        method: str,
        fingerprint: str,
        result: dict[str, Any],
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        self.method = method
        self.fingerprint = fingerprint
        self.result = result
        self.request_id = request_id


# The disconnection reports of a jurisdiction.
#
# The record of the regulator files a jurisdiction was sent: one stream per jurisdiction, one event per
# report issued, so that the next report starts where the last one ended.
#
# A disconnection report of month M covers the permanent disconnections recorded at positions
# ``from_position`` to ``to_position`` that occurred before ``period_end``; a disconnection recorded in that
# range but occurring later (the report of a month drawn while the next one has begun) is carried to the
# next report, which therefore starts at ``carry_from`` when that is earlier than ``to_position + 1``. What a
# report holds is a function of its own record and of the previous one's (``reported_by``), so redrawing a
# month gives the same file, and no disconnection is left out or reported twice.


@dataclass(frozen=True, slots=True)
class IssuedReport:
    """One report issued: its month, the positions it covers, its period's end, and what it held."""

    month: str
    from_position: int
    to_position: int
    period_end: datetime
    carry_from: int
    rows: int
    digest: str
    issued_at: datetime


class ReportOutOfOrder(errors.RuleViolation):
    """Raised when a report is issued for a month not after the jurisdiction's last report, or for a
    position range that does not start where the last report left off."""

    reason = "REPORT_OUT_OF_ORDER"


class DisconnectionReports(Aggregate):
    """The disconnection reports issued for one jurisdiction (a country calling code), in order."""

    class Event(LedgerEvent):
        """Base class of the report record's events."""

    class Opened(Event, Aggregate.Created):
        """The jurisdiction's first report was issued."""

        jurisdiction: str

    class Issued(Event):
        """A report was issued: the month, the positions and period it covers, its rows and its digest."""

        month: str
        from_position: int
        to_position: int
        period_end: datetime
        carry_from: int
        rows: int
        digest: str

    @staticmethod
    def create_id(jurisdiction: str, **_: object) -> UUID:
        """Stream id of a jurisdiction's report record."""
        return stable_id(f"/disconnection-reports/{jurisdiction}")

    @event(Opened)
    def __init__(self, jurisdiction: str, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.jurisdiction = jurisdiction
        self.reports: list[IssuedReport] = []
        self.last_occurred_at = occurred_at

    def next_from(self) -> int:
        """The first position the next report covers."""
        if not self.reports:
            return 1
        last = self.reports[-1]
        return min(last.to_position + 1, last.carry_from or last.to_position + 1)

    def issue(
        self,
        month: str,
        from_position: int,
        to_position: int,
        period_end: datetime,
        carry_from: int,
        rows: int,
        digest: str,
        ctx: Context,
    ) -> None:
        """Record a report; it must follow the last one in month, positions and period."""
        check_order(self.last_occurred_at, ctx.occurred_at, "report record")
        if self.reports:
            last = self.reports[-1]
            if month <= last.month:
                raise ReportOutOfOrder(
                    f"month {month} is not after the last report's month {last.month}", last_month=last.month
                )
            if to_position < last.to_position or period_end < last.period_end:
                raise ReportOutOfOrder(
                    f"the report ends before the last one (position {last.to_position})",
                    last_month=last.month,
                )
        expected = self.next_from()
        if from_position != expected:
            raise ReportOutOfOrder(
                f"the report must start at position {expected}, not {from_position}", from_position=str(expected)
            )
        if to_position < from_position - 1 or (not from_position <= carry_from <= to_position and carry_from):
            raise errors.InvalidArgument([("to_position", "the position range is empty or carry_from outside it")])
        self._issued(
            month=month,
            from_position=from_position,
            to_position=to_position,
            period_end=period_end,
            carry_from=carry_from,
            rows=rows,
            digest=digest,
            **ctx.fields(),
        )

    @event(Issued)
    def _issued(
        self,
        month: str,
        from_position: int,
        to_position: int,
        period_end: datetime,
        carry_from: int,
        rows: int,
        digest: str,
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        self.reports.append(
            IssuedReport(month, from_position, to_position, period_end, carry_from, rows, digest, occurred_at)
        )
        self.last_occurred_at = occurred_at
