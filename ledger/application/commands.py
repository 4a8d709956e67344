"""The lifecycle commands, one method per RPC: what each loads, which rules it asks the aggregates to
check, and what it returns. Each is run by the pipeline (``pipeline.execute``) against a unit of work:
an immediate one by default, the import's staged one when ``unit`` is given."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.application.pipeline import Command
from ledger.application.unit_of_work import CommandResult, Outcome, UnitOfWork
from ledger.domain.indexes import SimCard
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate

    from ledger.config import Policy
    from ledger.domain.context import Context
    from ledger.vault import PersonalDataVault


class LifecycleCommands:
    """The eleven lifecycle commands of ``LedgerApplication``, named after the RPCs."""

    policy: Policy
    vault: PersonalDataVault

    def run(self, command: Command, unit: UnitOfWork | None) -> CommandResult:
        """Run a command through the pipeline (the application provides it)."""
        raise NotImplementedError

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

    def register_subscriber(
        self,
        *,
        request_id: str,
        actor: str,
        full_name: str,
        id_type: str,
        id_number: str,
        date_of_birth: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Register a subscriber; personal data is sealed under a new data key of their own."""
        subscriber_id = Subscriber.id_for_request(request_id)
        personal = {"full_name": full_name, "id_type": id_type, "id_number": id_number, "date_of_birth": date_of_birth}

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            uow.ensure_data_key(subscriber_id)
            subscriber = Subscriber.register(
                subscriber_id,
                id_type=id_type,
                identity_key=self.vault.identity_key(id_type, id_number),
                personal_data=self.vault.seal(subscriber_id, personal),
                ctx=ctx,
            )
            return Outcome([subscriber], {"subscriber_id": str(subscriber_id)})

        return self.run(Command("RegisterSubscriber", request_id, actor, occurred_at, personal, handle), unit)

    def verify_identity(
        self,
        *,
        request_id: str,
        actor: str,
        subscriber_id: UUID,
        method: str,
        channel: str,
        agent_id: str,
        evidence_ref: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Record a real-name verification of a subscriber."""
        args: dict[str, Any] = {
            "subscriber_id": subscriber_id,
            "method": method,
            "channel": channel,
            "agent_id": agent_id,
            "evidence_ref": evidence_ref,
        }

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            subscriber = uow.subscriber(subscriber_id)
            subscriber.verify_identity(method, channel, agent_id, evidence_ref, ctx)
            return Outcome([subscriber])

        streams = (subscriber_id,)
        return self.run(Command("VerifyIdentity", request_id, actor, occurred_at, args, handle, streams), unit)

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
            holdings.open_tenure(tenure_id, number, subscriber_id, self.policy.max_numbers_per_identity, ctx)
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

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            num = uow.number(number)
            num.suspend(reason, note, ctx)
            return Outcome([num])

        args = {"number": number, "reason": reason, "note": note}
        streams = (Number.create_id(number),)
        return self.run(Command("SuspendNumber", request_id, actor, occurred_at, args, handle, streams), unit)

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

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            num = uow.number(number)
            num.resume(note, ctx)
            return Outcome([num])

        args = {"number": number, "note": note}
        streams = (Number.create_id(number),)
        return self.run(Command("ResumeNumber", request_id, actor, occurred_at, args, handle, streams), unit)

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
            tenure = num.disconnect(reason, self.policy.quarantine_days, list(self.policy.required_holders), ctx)
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

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            num = uow.number(number)
            tenure = num.confirm_data_cleared(tenure_id, holder, evidence_ref, ctx)
            return Outcome([num], {"clearance": tenure.clearance.value})

        args = {"number": number, "tenure_id": tenure_id, "holder": holder, "evidence_ref": evidence_ref}
        streams = (Number.create_id(number),)
        return self.run(Command("ConfirmDataCleared", request_id, actor, occurred_at, args, handle, streams), unit)

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

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            num = uow.number(number)
            num.release(override_reason, ctx)
            return Outcome([num])

        args = {"number": number, "override_reason": override_reason}
        streams = (Number.create_id(number),)
        return self.run(Command("ReleaseNumber", request_id, actor, occurred_at, args, handle, streams), unit)

    def erase_subscriber_data(
        self,
        *,
        request_id: str,
        actor: str,
        subscriber_id: UUID,
        legal_basis: str,
        occurred_at: datetime | None = None,
        unit: UnitOfWork | None = None,
    ) -> CommandResult:
        """Record the erasure, then destroy the subscriber's data key (crypto-shredding)."""

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            subscriber = uow.subscriber(subscriber_id)
            subscriber.erase(legal_basis, ctx)
            holdings = uow.holdings(subscriber.identity_key, ctx)
            holdings.record_erasure(subscriber_id, ctx)
            return Outcome(
                [subscriber, holdings],
                before_save=lambda: self.vault.store.mark_erasure_pending(subscriber_id),
                after_save=lambda: self.vault.destroy(subscriber_id),
            )

        args = {"subscriber_id": subscriber_id, "legal_basis": legal_basis}
        streams = (subscriber_id,)
        return self.run(Command("EraseSubscriberData", request_id, actor, occurred_at, args, handle, streams), unit)
