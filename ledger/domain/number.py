"""The Number aggregate: a number's state machine, its tenures, quarantine and per-holder clearance.

Events are stored under ``ledger.domain.number:Number.<Event>``: keep them nested here."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import errors
from ledger.domain.base import LedgerEvent, check_order, stable_id
from ledger.domain.closing import TenureClosing
from ledger.domain.rules import NumberStatus
from ledger.domain.tenure import Confirmation, Tenure

if TYPE_CHECKING:
    from ledger.domain.context import Context

__all__ = ["Confirmation", "Number", "Tenure"]


class Number(TenureClosing, Aggregate):
    """A telephone number in E.164 form and everything that happened to it (the commands that end a tenure,
    and those that follow, are in ``closing``)."""

    class Event(LedgerEvent):
        """Base class of the number's events."""

    class Provisioned(Event, Aggregate.Created):
        """The number entered the ledger as AVAILABLE."""

        number: str

    class Activated(Event):
        """A verified subscriber started a tenure on the number."""

        tenure_id: UUID
        subscriber_id: UUID
        iccid: str
        imsi: str
        channel: str
        agent_id: str

    class SimSwapped(Event):
        """The number moved to a new SIM."""

        tenure_id: UUID
        old_iccid: str
        new_iccid: str
        new_imsi: str
        reason: str
        channel: str
        agent_id: str

    class Suspended(Event):
        """The number's service was barred."""

        reason: str
        note: str

    class Resumed(Event):
        """The number's service returned."""

        note: str

    class Disconnected(Event):
        """The tenure closed; quarantine and clearance began."""

        tenure_id: UUID
        reason: str
        quarantine_until: datetime
        required_holders: list[str]

    class DataClearanceConfirmed(Event):
        """A data holder confirmed it cleared a closed tenure's data."""

        tenure_id: UUID
        holder: str
        evidence_ref: str

    class Released(Event):
        """The number became AVAILABLE again after quarantine."""

        tenure_id: UUID
        override_reason: str
        quarantine_overridden: bool
        clearance_overridden: bool

    class PortedOut(Event):
        """The holder took the number to another operator; the tenure ended as a port."""

        tenure_id: UUID
        recipient_operator: str
        required_holders: list[str]

    class PortedIn(Event):
        """Another operator's number entered (or came back into) the ledger as AVAILABLE by a port."""

        donor_operator: str

    class Returned(Event):
        """A ported-out number came back after the recipient operator disconnected it; quarantine began."""

        tenure_id: UUID
        disconnected_at: datetime
        quarantine_until: datetime

    @staticmethod
    def create_id(number: str, **_: object) -> UUID:
        """Stream id of a number, derived from its E.164 form."""
        return stable_id(f"/numbers/{number}")

    @staticmethod
    def tenure_id_for(number: str, ordinal: int) -> UUID:
        """Tenure ids are derived from the number and the tenure's ordinal, so replays agree."""
        return stable_id(f"/numbers/{number}/tenures/{ordinal}")

    @event(Provisioned)
    def __init__(self, number: str, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.number = number
        self.status = NumberStatus.AVAILABLE
        self.provisioned_at = occurred_at
        self.last_occurred_at = occurred_at
        self.tenures: list[Tenure] = []
        self.suspension_reason: str | None = None

    # Commands: each checks the rules, then triggers one event.

    def activate(self, subscriber_id: UUID, iccid: str, imsi: str, channel: str, agent_id: str, ctx: Context) -> UUID:
        """Start a tenure; the number must be AVAILABLE. Returns the new tenure's id."""
        check_order(self.last_occurred_at, ctx.occurred_at, "number")
        if self.status != NumberStatus.AVAILABLE:
            raise errors.NumberNotAvailable(f"number {self.number} is {self.status}, not AVAILABLE", state=self.status)
        tenure_id = self.tenure_id_for(self.number, len(self.tenures) + 1)
        self._activated(
            tenure_id=tenure_id,
            subscriber_id=subscriber_id,
            iccid=iccid,
            imsi=imsi,
            channel=channel,
            agent_id=agent_id,
            **ctx.fields(),
        )
        return tenure_id

    def swap_sim(self, new_iccid: str, new_imsi: str, reason: str, channel: str, agent_id: str, ctx: Context) -> str:
        """Move the open tenure to a new SIM. Returns the old ICCID."""
        check_order(self.last_occurred_at, ctx.occurred_at, "number")
        tenure = self._require_in_service("swap its SIM")
        if new_iccid == tenure.iccid:
            raise errors.SameIccid(f"number {self.number} already uses ICCID {new_iccid}")
        old_iccid = tenure.iccid
        self._sim_swapped(
            tenure_id=tenure.tenure_id,
            old_iccid=old_iccid,
            new_iccid=new_iccid,
            new_imsi=new_imsi,
            reason=reason,
            channel=channel,
            agent_id=agent_id,
            **ctx.fields(),
        )
        return old_iccid

    def suspend(self, reason: str, note: str, ctx: Context) -> None:
        """Bar service; the number must be ACTIVE."""
        check_order(self.last_occurred_at, ctx.occurred_at, "number")
        if self.status != NumberStatus.ACTIVE:
            raise errors.NumberNotActive(f"number {self.number} is {self.status}, not ACTIVE", state=self.status)
        self._suspended(reason=reason, note=note, **ctx.fields())

    def resume(self, note: str, ctx: Context) -> None:
        """Restore service; the number must be SUSPENDED."""
        check_order(self.last_occurred_at, ctx.occurred_at, "number")
        if self.status != NumberStatus.SUSPENDED:
            raise errors.NumberNotSuspended(f"number {self.number} is {self.status}, not SUSPENDED", state=self.status)
        self._resumed(note=note, **ctx.fields())

    # Event appliers: they only assign state, because they run again on every replay.

    @event(Activated)
    def _activated(
        self,
        tenure_id: UUID,
        subscriber_id: UUID,
        iccid: str,
        imsi: str,
        channel: str,
        agent_id: str,
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        self.tenures.append(
            Tenure(
                tenure_id=tenure_id,
                subscriber_id=subscriber_id,
                iccid=iccid,
                imsi=imsi,
                activated_at=occurred_at,
                channel=channel,
                agent_id=agent_id,
            )
        )
        self.status = NumberStatus.ACTIVE
        self.last_occurred_at = occurred_at

    @event(SimSwapped)
    def _sim_swapped(
        self,
        tenure_id: UUID,
        old_iccid: str,
        new_iccid: str,
        new_imsi: str,
        reason: str,
        channel: str,
        agent_id: str,
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        tenure = self.tenures[-1]
        tenure.iccid = new_iccid
        tenure.imsi = new_imsi
        self.last_occurred_at = occurred_at

    @event(Suspended)
    def _suspended(self, reason: str, note: str, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.status = NumberStatus.SUSPENDED
        self.suspension_reason = reason
        self.last_occurred_at = occurred_at

    @event(Resumed)
    def _resumed(self, note: str, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.status = NumberStatus.ACTIVE
        self.suspension_reason = None
        self.last_occurred_at = occurred_at

    @event(Disconnected)
    def _disconnected(
        self,
        tenure_id: UUID,
        reason: str,
        quarantine_until: datetime,
        required_holders: list[str],
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        tenure = self._close_last_tenure(reason, required_holders, NumberStatus.QUARANTINED, occurred_at)
        tenure.quarantine_until = quarantine_until

    @event(DataClearanceConfirmed)
    def _data_clearance_confirmed(
        self,
        tenure_id: UUID,
        holder: str,
        evidence_ref: str,
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        tenure = self.tenure(tenure_id)
        tenure.confirmations[holder] = Confirmation(holder, evidence_ref, occurred_at)
        self.last_occurred_at = occurred_at

    @event(Released)
    def _released(
        self,
        tenure_id: UUID,
        override_reason: str,
        quarantine_overridden: bool,
        clearance_overridden: bool,
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        tenure = self.tenure(tenure_id)
        tenure.released_at = occurred_at
        tenure.override_reason = override_reason
        tenure.violation = clearance_overridden
        self.status = NumberStatus.AVAILABLE
        self.last_occurred_at = occurred_at

    @event(PortedOut)
    def _ported_out(
        self,
        tenure_id: UUID,
        recipient_operator: str,
        required_holders: list[str],
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        tenure = self._close_last_tenure("PORTED_OUT", required_holders, NumberStatus.PORTED_OUT, occurred_at)
        tenure.ported_to = recipient_operator
        self.ported_out_at = occurred_at

    @event(PortedIn)
    def _ported_in(self, donor_operator: str, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.status = NumberStatus.AVAILABLE
        self.ported_out_at = None
        self.ported_in_from = donor_operator
        self.last_occurred_at = occurred_at

    @event(Returned)
    def _returned(
        self,
        tenure_id: UUID,
        disconnected_at: datetime,
        quarantine_until: datetime,
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        tenure = self.tenure(tenure_id)
        tenure.recipient_disconnected_at = disconnected_at
        tenure.quarantine_until = quarantine_until
        self.status = NumberStatus.QUARANTINED
        self.ported_out_at = None
        self.last_occurred_at = occurred_at
