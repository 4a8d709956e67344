"""Number portability, a base of the Number aggregate: a number ported out to another operator, ported in
from one, and returned after the recipient disconnected it.

A port is never a change of holder (the same consumer keeps the number, FCC 18-177 para. 38): the tenure
ends as a port, the number is PORTED_OUT (served elsewhere, never released or reassigned here), and the
former holder's data clearance still opens. A returned number is quarantined from the recipient's
disconnection. The events are stored under ``ledger.domain.porting:PortableNumber.<Event>``: name them
``PortableNumber.PortedOut`` and so on (the library also makes subclasses such as ``Number.PortedOut``
for the aggregate that inherits them, but records the classes defined here)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import errors
from ledger.domain.base import LedgerEvent, check_order
from ledger.domain.rules import NumberStatus
from ledger.domain.tenure import Tenure, TenureHistory

if TYPE_CHECKING:
    from ledger.domain.context import Context


class PortableNumber(TenureHistory, Aggregate):
    """A number's portability: port-out, port-in and return (see ``Number``)."""

    last_occurred_at: datetime
    suspension_reason: str | None
    # Class-level defaults, so that numbers restored from snapshots taken before porting existed read them.
    ported_out_at = cast("datetime | None", None)
    ported_in_from = ""

    class PortedOut(LedgerEvent):
        """The holder took the number to another operator; the tenure ended as a port."""

        tenure_id: UUID
        recipient_operator: str
        required_holders: list[str]

    class PortedIn(LedgerEvent):
        """Another operator's number entered (or came back into) the ledger as AVAILABLE by a port."""

        donor_operator: str

    class Returned(LedgerEvent):
        """A ported-out number came back after the recipient operator disconnected it; quarantine began."""

        tenure_id: UUID
        disconnected_at: datetime
        quarantine_until: datetime

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
        tenure = self.tenures[-1]
        tenure.disconnected_at = occurred_at
        tenure.disconnect_reason = "PORTED_OUT"
        tenure.ported_to = recipient_operator
        tenure.required_holders = tuple(required_holders)
        self.status = NumberStatus.PORTED_OUT
        self.ported_out_at = occurred_at
        self.suspension_reason = None
        self.last_occurred_at = occurred_at

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
