"""Consistency boundaries that span numbers: holdings per identity, SIM assignment, request records.

Each is a small aggregate whose version changes with every update, so that two concurrent commands
touching the same identity, SIM or request id conflict on save and one of them is retried.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import errors
from ledger.domain.base import LedgerEvent, stable_id

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
