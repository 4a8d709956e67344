"""The number's lifecycle commands, one method per RPC: what each loads, which rules it asks the aggregates to
check, and what it returns. Each is run by the pipeline (``pipeline.execute``) against a unit of work:
an immediate one by default, the import's staged one when ``unit`` is given."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.application.pipeline import Command
from ledger.application.porting_commands import PortingCommands
from ledger.application.unit_of_work import CommandResult, Outcome, UnitOfWork
from ledger.domain.indexes import SimCard
from ledger.domain.number import Number

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate

    from ledger.domain.context import Context


class LifecycleCommands(PortingCommands):
    """The lifecycle commands of ``LedgerApplication``, named after the RPCs: the number's here, its
    portability in ``porting_commands``, the subscriber's (register, verify, erase) in ``subscriber_commands``."""

    def provision_numbers(
        self,
        *,
        request_id: str,
        actor: str,
        numbers: list[str],
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Add numbers as AVAILABLE; numbers already in the ledger are skipped and reported."""
        unique = list(dict.fromkeys(numbers))

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            created: list[Aggregate] = []
            skipped: list[str] = []
            for number in unique:
                if uow.exists(Number.create_id(number)):
                    skipped.append(number)
                else:
                    created.append(Number(number=number, **ctx.fields()))
            return Outcome(created, {"provisioned_count": len(created), "already_provisioned": skipped})

        args = {"numbers": unique}
        return self.run(Command("ProvisionNumbers", request_id, actor, occurred_at, args, handle), unit)

    def activate_sim(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        subscriber_id: UUID,
        iccid: str,
        imsi: str,
        channel: str,
        agent_id: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Start a tenure: verified identity, AVAILABLE number, under the cap, SIM not in use."""
        self.require_agent(channel, agent_id)
        args: dict[str, Any] = {
            "number": number,
            "subscriber_id": subscriber_id,
            "iccid": iccid,
            "imsi": imsi,
            "channel": channel,
            "agent_id": agent_id,
        }

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            num = uow.number(number)
            subscriber = uow.subscriber(subscriber_id)
            subscriber.ensure_may_hold_number(ctx.occurred_at)
            tenure_id = num.activate(subscriber_id, iccid, imsi, channel, agent_id, ctx)
            holdings = uow.holdings(subscriber.identity_key, ctx)
            holdings.open_tenure(tenure_id, number, subscriber_id, self.policy.max_numbers_for(number), ctx)
            sim = uow.sim(iccid, ctx)
            sim.assign(number, tenure_id, ctx)
            return Outcome([num, holdings, sim], {"tenure_id": str(tenure_id)})

        streams = (Number.create_id(number), subscriber_id, SimCard.create_id(iccid))
        return self.run(Command("ActivateSim", request_id, actor, occurred_at, args, handle, streams), unit)

    def swap_sim(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        new_iccid: str,
        new_imsi: str,
        reason: str,
        channel: str,
        agent_id: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Move a number in service to a new SIM; the new SIM must be free."""
        self.require_agent(channel, agent_id)
        args = {
            "number": number,
            "new_iccid": new_iccid,
            "new_imsi": new_imsi,
            "reason": reason,
            "channel": channel,
            "agent_id": agent_id,
        }

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            num = uow.number(number)
            old_iccid = num.swap_sim(new_iccid, new_imsi, reason, channel, agent_id, ctx)
            tenure = num.tenures[-1]
            new_sim = uow.sim(new_iccid, ctx)
            new_sim.assign(number, tenure.tenure_id, ctx)
            old_sim = uow.sim(old_iccid, ctx)
            old_sim.unassign(ctx)
            return Outcome([num, old_sim, new_sim])

        streams = (Number.create_id(number), SimCard.create_id(new_iccid))
        return self.run(Command("SwapSim", request_id, actor, occurred_at, args, handle, streams), unit)

    def suspend_number(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        reason: str,
        note: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Bar an ACTIVE number's service, with a reason code."""

        args = {"number": number, "reason": reason, "note": note}
        command = _on_number(
            "SuspendNumber", request_id, actor, occurred_at, args, lambda n, c: n.suspend(reason, note, c)
        )
        return self.run(command, unit)

    def resume_number(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        note: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Restore a SUSPENDED number's service."""

        args = {"number": number, "note": note}
        command = _on_number("ResumeNumber", request_id, actor, occurred_at, args, lambda n, c: n.resume(note, c))
        return self.run(command, unit)

    def disconnect_number(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        reason: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Close the tenure, free its SIM and identity slot, start quarantine and clearance."""

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            num = uow.number(number)
            days = self.policy.quarantine_days_for(number)
            tenure = num.disconnect(reason, days, list(self.policy.required_holders), ctx)
            subscriber = uow.subscriber(tenure.subscriber_id)
            holdings = uow.holdings(subscriber.identity_key, ctx)
            holdings.close_tenure(tenure.tenure_id, ctx)
            sim = uow.sim(tenure.iccid, ctx)
            sim.unassign(ctx)
            quarantine_until = tenure.quarantine_until or ctx.occurred_at
            data = {"tenure_id": str(tenure.tenure_id), "quarantine_until": quarantine_until.isoformat()}
            return Outcome([num, holdings, sim], data)

        args = {"number": number, "reason": reason}
        streams = (Number.create_id(number),)
        return self.run(Command("DisconnectNumber", request_id, actor, occurred_at, args, handle, streams), unit)

    def confirm_data_cleared(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        tenure_id: UUID,
        holder: str,
        evidence_ref: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Record one data holder's clearance of a closed tenure; returns the tenure's clearance."""

        args = {"number": number, "tenure_id": tenure_id, "holder": holder, "evidence_ref": evidence_ref}

        def decide(num: Number, ctx: Context) -> dict[str, Any]:
            return {"clearance": num.confirm_data_cleared(tenure_id, holder, evidence_ref, ctx).clearance.value}

        return self.run(_on_number("ConfirmDataCleared", request_id, actor, occurred_at, args, decide), unit)

    def release_number(
        self,
        *,
        request_id: str,
        actor: str,
        number: str,
        override_reason: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Make a QUARANTINED number AVAILABLE once quarantine and clearance are complete (or overridden)."""

        args = {"number": number, "override_reason": override_reason}
        command = _on_number(
            "ReleaseNumber", request_id, actor, occurred_at, args, lambda n, c: n.release(override_reason, c)
        )
        return self.run(command, unit)


def _on_number(
    method: str,
    request_id: str,
    actor: str,
    occurred_at: datetime | None,
    args: dict[str, Any],
    decide: Callable[[Number, Context], dict[str, Any] | None],
) -> Command:
    """A command that changes only the number ``args["number"]``: ``decide`` asks the aggregate and may
    return the command's result values."""
    number = args["number"]

    def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
        num = uow.number(number)
        return Outcome([num], decide(num, ctx) or {})

    return Command(method, request_id, actor, occurred_at, args, handle, (Number.create_id(number),))
