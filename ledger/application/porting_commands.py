"""The number's portability commands, one method per RPC (PortOutNumber, PortInNumber, ReturnNumber), run
like the other lifecycle commands (see ``commands``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ledger.application.pipeline import Command
from ledger.application.subscriber_commands import SubscriberCommands
from ledger.application.unit_of_work import CommandResult, Outcome, UnitOfWork
from ledger.domain.number import Number

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate

    from ledger.domain.context import Context


class PortingCommands(SubscriberCommands):
    """Port-out, port-in and return of numbers; a base of ``LifecycleCommands``."""

    def port_out_number(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        recipient_operator: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """End the tenure as a port: the number is PORTED_OUT, its SIM and identity slot are freed, and the
        former holder's data clearance opens (no quarantine: the number is not ours to reassign)."""

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            num = uow.number(number)
            tenure = num.port_out(recipient_operator, list(self.policy.required_holders), ctx)
            subscriber = uow.subscriber(tenure.subscriber_id)
            holdings = uow.holdings(subscriber.identity_key, ctx)
            holdings.close_tenure(tenure.tenure_id, ctx)
            sim = uow.sim(tenure.iccid, ctx)
            sim.unassign(ctx)
            return Outcome([num, holdings, sim], {"tenure_id": str(tenure.tenure_id)})

        args = {"number": number, "recipient_operator": recipient_operator}
        streams = (Number.create_id(number),)
        return self.run(Command("PortOutNumber", request_id, actor, occurred_at, args, handle, streams), unit)

    def port_in_number(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        donor_operator: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Take in another operator's number as AVAILABLE (the ledger's records of it begin here), or one
        ported out from here coming back."""

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            changed: list[Aggregate] = []
            if uow.exists(Number.create_id(number)):
                num = uow.number(number)
                num.port_in(donor_operator, ctx)
            else:
                num = Number(number=number, **ctx.fields())
                num.port_in(donor_operator, ctx, entering=True)
            changed.append(num)
            return Outcome(changed, {})

        args: dict[str, Any] = {"number": number, "donor_operator": donor_operator}
        streams = (Number.create_id(number),)
        return self.run(Command("PortInNumber", request_id, actor, occurred_at, args, handle, streams), unit)

    def return_number(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        disconnected_at: datetime,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Take back a ported-out number the recipient disconnected; quarantine runs from ``disconnected_at``
        for the number's jurisdiction, then release as usual."""

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            num = uow.number(number)
            until = num.return_(disconnected_at, self.policy.quarantine_days_for(number), ctx)
            return Outcome([num], {"quarantine_until": until.isoformat()})

        args = {"number": number, "disconnected_at": disconnected_at}
        streams = (Number.create_id(number),)
        return self.run(Command("ReturnNumber", request_id, actor, occurred_at, args, handle, streams), unit)
