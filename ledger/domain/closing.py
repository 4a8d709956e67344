"""The Number aggregate's commands that end a tenure or follow its end, a base of ``Number``: disconnection,
data clearance, release, and portability (port-out, port-in, return). Each checks the rules, then calls
an event applier of ``Number``, where the events are nested (stored as ``ledger.domain.number:Number.<Event>``).

A port is never a change of holder (the same consumer keeps the number, FCC 18-177 para. 38): the tenure
ends as a port, the number is PORTED_OUT (served elsewhere, never released or reassigned here), and the
former holder's data clearance still opens. A returned number is quarantined from the recipient's
disconnection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from ledger.domain import errors
from ledger.domain.base import check_order
from ledger.domain.rules import NumberStatus
from ledger.domain.tenure import Tenure, TenureHistory

if TYPE_CHECKING:
    from ledger.domain.context import Context


class TenureClosing(TenureHistory):
    """Disconnection, clearance, release and portability of a number (a base of ``Number``)."""

    last_occurred_at: datetime
    suspension_reason: str | None
    # Class-level defaults, so that numbers restored from snapshots taken before porting existed read them.
    ported_out_at: datetime | None = None
    ported_in_from: str = ""

    # The appliers, defined with the events in ``Number``.
    _disconnected: Callable[..., None]
    _data_clearance_confirmed: Callable[..., None]
    _released: Callable[..., None]
    _ported_out: Callable[..., None]
    _ported_in: Callable[..., None]
    _returned: Callable[..., None]

    def _close_last_tenure(
        self, reason: str, required_holders: list[str], status: NumberStatus, occurred_at: datetime
    ) -> Tenure:
        """What a disconnection and a port-out both assign when their appliers in ``Number`` end the last
        tenure; it only assigns state, because appliers run again on every replay. Returns the tenure."""
        tenure = self.tenures[-1]
        tenure.disconnected_at = occurred_at
        tenure.disconnect_reason = reason
        tenure.required_holders = tuple(required_holders)
        self.status = status
        self.suspension_reason = None
        self.last_occurred_at = occurred_at
        return tenure

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
