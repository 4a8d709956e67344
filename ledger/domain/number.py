"""The Number aggregate: a number's state machine, its tenures, quarantine and per-holder clearance, and
portability (port-out, port-in, return).

Events are stored under ``ledger.domain.number:Number.<Event>``: keep them nested here.

A port is never a change of holder (the same consumer keeps the number, FCC 18-177 para. 38): the tenure
ends as a port, the number is PORTED_OUT (served elsewhere, never released or reassigned here), and the
former holder's data clearance still opens. A returned number is quarantined from the recipient's
disconnection."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import errors
from ledger.domain.base import LedgerEvent, check_order, stable_id
from ledger.domain.rules import NumberStatus
from ledger.domain.tenure import Confirmation, Tenure, decode_tenure, encode_tenure

if TYPE_CHECKING:
    from ledger.domain.context import Context


class Number(Aggregate):
    """A telephone number in E.164 form and everything that happened to it."""

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

    # Class-level defaults, so that numbers restored from snapshots taken before porting existed read them.
    # Not annotated at run time: annotations in an aggregate's body make the library treat it as a dataclass.
    if TYPE_CHECKING:
        ported_out_at: datetime | None = None
        ported_in_from: str = ""
    else:
        ported_out_at = None
        ported_in_from = ""

    @event(Provisioned)
    def __init__(self, number: str, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.number = number
        self.status = NumberStatus.AVAILABLE
        self.provisioned_at = occurred_at
        self.last_occurred_at = occurred_at
        self.tenures: list[Tenure] = []
        self.suspension_reason: str | None = None

    # Snapshots (see ledger.snapshots): tenures and the status as JSON-friendly values, and back.

    @staticmethod
    def encode_snapshot_state(state: dict[str, Any]) -> dict[str, Any]:
        """The aggregate's state with tenures as dicts and the status as text."""
        state["status"] = str(state["status"])
        state["tenures"] = [encode_tenure(t) for t in state["tenures"]]
        return state

    @staticmethod
    def decode_snapshot_state(state: dict[str, Any]) -> dict[str, Any]:
        """The inverse of ``encode_snapshot_state``."""
        state["status"] = NumberStatus(state["status"])
        state["tenures"] = [decode_tenure(t) for t in state["tenures"]]
        return state

    # Queries.

    @property
    def current_tenure(self) -> Tenure | None:
        """The open tenure, if any."""
        if self.tenures and self.tenures[-1].is_open:
            return self.tenures[-1]
        return None

    def tenure(self, tenure_id: UUID) -> Tenure:
        """The tenure with that id, or TenureNotFound."""
        for tenure in self.tenures:
            if tenure.tenure_id == tenure_id:
                return tenure
        raise errors.TenureNotFound(f"{tenure_id} of number {self.number}")

    def closed_tenures(self) -> list[Tenure]:
        """Closed tenures, oldest first."""
        return [t for t in self.tenures if not t.is_open]

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

    def port_out(self, recipient_operator: str, required_holders: list[str], ctx: Context) -> Tenure:
        """End the open tenure as a port to ``recipient_operator``; clearance opens, quarantine does not."""
        check_order(self.last_occurred_at, ctx.occurred_at, "number")
        tenure = self._require_in_service("port it out")
        self._ported_out(
            tenure_id=tenure.tenure_id,
            recipient_operator=recipient_operator,
            required_holders=list(required_holders),
            **ctx.fields(),
        )
        return tenure

    def port_in(self, donor_operator: str, ctx: Context, *, entering: bool = False) -> None:
        """Take the number in from ``donor_operator``: a number just entering the ledger (``entering``) or
        one that was ported out from here."""
        check_order(self.last_occurred_at, ctx.occurred_at, "number")
        if not entering and self.status != NumberStatus.PORTED_OUT:
            raise errors.NumberNotPortedOut(
                f"number {self.number} is {self.status} here, not PORTED_OUT: it cannot be ported in",
                state=self.status,
            )
        self._ported_in(donor_operator=donor_operator, **ctx.fields())

    def return_(self, disconnected_at: datetime, quarantine_days: int, ctx: Context) -> datetime:
        """Take back a ported-out number the recipient disconnected at ``disconnected_at``; quarantine runs
        from then. Returns when it ends."""
        check_order(self.last_occurred_at, ctx.occurred_at, "number")
        if self.status != NumberStatus.PORTED_OUT or self.ported_out_at is None:
            raise errors.NumberNotPortedOut(f"number {self.number} is {self.status}, not PORTED_OUT", state=self.status)
        if disconnected_at < self.ported_out_at:
            raise errors.InvalidArgument(
                [("disconnected_at", f"is before the port-out ({self.ported_out_at.isoformat()})")]
            )
        if disconnected_at > ctx.occurred_at:
            raise errors.InvalidArgument([("disconnected_at", "is after occurred_at (the number's return)")])
        quarantine_until = disconnected_at + timedelta(days=quarantine_days)
        self._returned(
            tenure_id=self.tenures[-1].tenure_id,
            disconnected_at=disconnected_at,
            quarantine_until=quarantine_until,
            **ctx.fields(),
        )
        return quarantine_until

    def disconnect(self, reason: str, quarantine_days: int, required_holders: list[str], ctx: Context) -> Tenure:
        """Close the open tenure, start quarantine and open clearance. Returns the closed tenure."""
        check_order(self.last_occurred_at, ctx.occurred_at, "number")
        if reason == "PORTED_OUT":  # a port is not a change of holder: it must not start a quarantine
            raise errors.InvalidArgument(
                [("reason", "a port-out is recorded with PortOutNumber, not DisconnectNumber")]
            )
        tenure = self._require_in_service("disconnect it")
        self._disconnected(
            tenure_id=tenure.tenure_id,
            reason=reason,
            quarantine_until=ctx.occurred_at + timedelta(days=quarantine_days),
            required_holders=list(required_holders),
            **ctx.fields(),
        )
        return tenure

    def confirm_data_cleared(self, tenure_id: UUID, holder: str, evidence_ref: str, ctx: Context) -> Tenure:
        """Record one holder's clearance of a closed tenure. Returns the tenure."""
        check_order(self.last_occurred_at, ctx.occurred_at, "number")
        tenure = self.tenure(tenure_id)
        if tenure.is_open:
            raise errors.TenureNotClosed(f"tenure {tenure_id} of number {self.number} is still open")
        if holder in tenure.confirmations:
            raise errors.HolderAlreadyConfirmed(
                f"holder {holder!r} already confirmed clearance of tenure {tenure_id}", holder=holder
            )
        self._data_clearance_confirmed(tenure_id=tenure_id, holder=holder, evidence_ref=evidence_ref, **ctx.fields())
        return tenure

    def release(self, override_reason: str, ctx: Context) -> None:
        """Make a quarantined number AVAILABLE; refused early or while clearance is pending,
        unless an override reason is given."""
        check_order(self.last_occurred_at, ctx.occurred_at, "number")
        if self.status == NumberStatus.PORTED_OUT:
            raise errors.NumberPortedOut(f"number {self.number} was ported out: it is served by another operator")
        if self.status != NumberStatus.QUARANTINED:
            raise errors.NumberNotQuarantined(
                f"number {self.number} is {self.status}, not QUARANTINED", state=self.status
            )
        tenure = self.tenures[-1]
        if tenure.quarantine_until is None:  # unreachable: a quarantined number's last tenure is closed
            raise errors.NumberNotQuarantined(f"number {self.number} has no closed tenure")
        early = ctx.occurred_at < tenure.quarantine_until
        pending = bool(tenure.outstanding_holders)
        if not override_reason:
            if early:
                raise errors.QuarantineNotElapsed(
                    f"number {self.number} is quarantined until {tenure.quarantine_until.isoformat()}",
                    quarantine_until=tenure.quarantine_until.isoformat(),
                )
            if pending:
                raise errors.ClearancePending(
                    f"holders {', '.join(tenure.outstanding_holders)} have not confirmed clearance "
                    f"of tenure {tenure.tenure_id}",
                    outstanding_holders=",".join(tenure.outstanding_holders),
                )
        self._released(
            tenure_id=tenure.tenure_id,
            override_reason=override_reason,
            quarantine_overridden=early,
            clearance_overridden=pending,
            **ctx.fields(),
        )

    # What the commands share.

    def _require_in_service(self, action: str) -> Tenure:
        tenure = self.current_tenure
        if tenure is None or self.status not in (NumberStatus.ACTIVE, NumberStatus.SUSPENDED):
            raise errors.NumberNotInService(
                f"number {self.number} is {self.status}; cannot {action}", state=self.status
            )
        return tenure

    def _close_last_tenure(
        self, reason: str, required_holders: list[str], status: NumberStatus, occurred_at: datetime
    ) -> Tenure:
        """What a disconnection and a port-out both assign when their appliers end the last
        tenure; it only assigns state, because appliers run again on every replay. Returns the tenure."""
        tenure = self.tenures[-1]
        tenure.disconnected_at = occurred_at
        tenure.disconnect_reason = reason
        tenure.required_holders = tuple(required_holders)
        self.status = status
        self.suspension_reason = None
        self.last_occurred_at = occurred_at
        return tenure

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
