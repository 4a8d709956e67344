"""How each lifecycle command is decided: one function per command, taking the command, a unit of work
and the request's context; it loads through the unit of work, asks the aggregates to check their rules,
and returns an ``Outcome`` (what changed, the result values). The pipeline (``pipeline.execute``) runs it
with idempotency, retries and one atomic save.

``COMMANDS``, keyed by the RPC's name, is the one table the edges (the gRPC servicer, ImportCommands, the
HTTP routes) and the pipeline find a command's dataclass and handler in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.application.commands import (
    ActivateSim,
    Command,
    CompleteErasure,
    ConfirmDataCleared,
    DisconnectNumber,
    EraseSubscriberData,
    PortInNumber,
    PortOutNumber,
    ProvisionNumbers,
    RecordDisconnectionReport,
    RegisterSubscriber,
    ReleaseNumber,
    ResumeNumber,
    ReturnNumber,
    SuspendNumber,
    SwapSim,
    VerifyIdentity,
)
from ledger.application.unit_of_work import Outcome, UnitOfWork
from ledger.domain import errors
from ledger.domain.indexes import IdentityHoldings
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber
from ledger.keys.identity import plan_identity, release_identity

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate

    from ledger.application.unit_of_work import Ledger
    from ledger.domain.context import Context
    from ledger.policy import Policy


# The number's lifecycle.


def provision_numbers(command: ProvisionNumbers, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Add numbers as AVAILABLE; numbers already in the ledger are skipped and reported."""
    created: list[Aggregate] = []
    skipped: list[str] = []
    for number in command.numbers:
        if uow.exists(Number.create_id(number)):
            skipped.append(number)
        else:
            created.append(Number(number=number, **ctx.fields()))
    return Outcome(created, {"provisioned_count": len(created), "already_provisioned": skipped})


def activate_sim(command: ActivateSim, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Start a tenure: verified identity, AVAILABLE number, under the cap, SIM not in use."""
    policy = uow.app.policy
    _require_agent(policy, command.channel, command.agent_id)
    num = uow.number(command.number)
    subscriber = uow.subscriber(command.subscriber_id)
    subscriber.ensure_may_hold_number(ctx.occurred_at)
    tenure_id = num.activate(command.subscriber_id, command.iccid, command.imsi, command.channel, command.agent_id, ctx)
    holdings = uow.holdings(subscriber.identity_key, ctx)
    cap = policy.max_numbers_for(command.number)
    holdings.open_tenure(tenure_id, command.number, command.subscriber_id, cap, ctx)
    sim = uow.sim(command.iccid, ctx)
    sim.assign(command.number, tenure_id, ctx)
    return Outcome([num, holdings, sim], {"tenure_id": str(tenure_id)})


def swap_sim(command: SwapSim, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Move a number in service to a new SIM; the new SIM must be free."""
    _require_agent(uow.app.policy, command.channel, command.agent_id)
    num = uow.number(command.number)
    old_iccid = num.swap_sim(
        command.new_iccid, command.new_imsi, command.reason, command.channel, command.agent_id, ctx
    )
    new_sim = uow.sim(command.new_iccid, ctx)
    new_sim.assign(command.number, num.tenures[-1].tenure_id, ctx)
    old_sim = uow.sim(old_iccid, ctx)
    old_sim.unassign(ctx)
    return Outcome([num, old_sim, new_sim])


def suspend_number(command: SuspendNumber, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Bar an ACTIVE number's service, with a reason code."""
    num = uow.number(command.number)
    num.suspend(command.reason, command.note, ctx)
    return Outcome([num])


def resume_number(command: ResumeNumber, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Restore a SUSPENDED number's service."""
    num = uow.number(command.number)
    num.resume(command.note, ctx)
    return Outcome([num])


def disconnect_number(command: DisconnectNumber, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Close the tenure, free its SIM and identity slot, start quarantine and clearance."""
    policy = uow.app.policy
    num = uow.number(command.number)
    days = policy.quarantine_days_for(command.number)
    tenure = num.disconnect(command.reason, days, list(policy.required_holders), ctx)
    subscriber = uow.subscriber(tenure.subscriber_id)
    holdings = uow.holdings(subscriber.identity_key, ctx)
    holdings.close_tenure(tenure.tenure_id, ctx)
    sim = uow.sim(tenure.iccid, ctx)
    sim.unassign(ctx)
    quarantine_until = tenure.quarantine_until or ctx.occurred_at
    data = {"tenure_id": str(tenure.tenure_id), "quarantine_until": quarantine_until.isoformat()}
    return Outcome([num, holdings, sim], data)


def confirm_data_cleared(command: ConfirmDataCleared, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Record one data holder's clearance of a closed tenure; returns the tenure's clearance."""
    num = uow.number(command.number)
    tenure = num.confirm_data_cleared(command.tenure_id, command.holder, command.evidence_ref, ctx)
    return Outcome([num], {"clearance": tenure.clearance.value})


def release_number(command: ReleaseNumber, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Make a QUARANTINED number AVAILABLE once quarantine and clearance are complete (or overridden)."""
    num = uow.number(command.number)
    num.release(command.override_reason, ctx)
    return Outcome([num])


# The number's portability.


def port_out_number(command: PortOutNumber, uow: UnitOfWork, ctx: Context) -> Outcome:
    """End the tenure as a port: the number is PORTED_OUT, its SIM and identity slot are freed, and the
    former holder's data clearance opens (no quarantine: the number is not ours to reassign)."""
    num = uow.number(command.number)
    tenure = num.port_out(command.recipient_operator, list(uow.app.policy.required_holders), ctx)
    subscriber = uow.subscriber(tenure.subscriber_id)
    holdings = uow.holdings(subscriber.identity_key, ctx)
    holdings.close_tenure(tenure.tenure_id, ctx)
    sim = uow.sim(tenure.iccid, ctx)
    sim.unassign(ctx)
    return Outcome([num, holdings, sim], {"tenure_id": str(tenure.tenure_id)})


def port_in_number(command: PortInNumber, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Take in another operator's number as AVAILABLE (the ledger's records of it begin here), or one
    ported out from here coming back."""
    if uow.exists(Number.create_id(command.number)):
        num = uow.number(command.number)
        num.port_in(command.donor_operator, ctx)
    else:
        num = Number(number=command.number, **ctx.fields())
        num.port_in(command.donor_operator, ctx, entering=True)
    return Outcome([num])


def return_number(command: ReturnNumber, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Take back a ported-out number the recipient disconnected; quarantine runs from ``disconnected_at``
    for the number's jurisdiction, then release as usual."""
    num = uow.number(command.number)
    until = num.return_(command.disconnected_at, uow.app.policy.quarantine_days_for(command.number), ctx)
    return Outcome([num], {"quarantine_until": until.isoformat()})


# The regulator's files.


def record_disconnection_report(command: RecordDisconnectionReport, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Record a disconnection report issued for a jurisdiction; it must follow the jurisdiction's last one."""
    record = uow.disconnection_reports(command.jurisdiction, ctx)
    record.issue(
        command.month,
        command.from_position,
        command.to_position,
        command.period_end,
        command.carry_from,
        command.rows,
        command.digest,
        ctx,
    )
    return Outcome([record])


# The subscriber.


def register_subscriber(command: RegisterSubscriber, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Register a subscriber (the id derives from the request id); personal data is sealed under a new
    data key of their own."""
    vault = uow.app.vault
    subscriber_id = Subscriber.id_for_request(ctx.request_id)
    key, salt = plan_identity(
        vault,
        command.id_type,
        command.id_number,
        subscriber_id,
        legacy_in_use=lambda legacy: uow.exists(IdentityHoldings.create_id(legacy)),
    )
    data_key = uow.ensure_data_key(subscriber_id, salt)
    subscriber = Subscriber.register(
        subscriber_id,
        id_type=command.id_type,
        identity_key=key,
        personal_data=vault.seal(subscriber_id, command.args(), data_key),
        ctx=ctx,
    )
    return Outcome([subscriber], {"subscriber_id": str(subscriber_id)})


def verify_identity(command: VerifyIdentity, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Record a real-name verification of a subscriber."""
    _require_agent(uow.app.policy, command.channel, command.agent_id)
    subscriber = uow.subscriber(command.subscriber_id)
    subscriber.verify_identity(command.method, command.channel, command.agent_id, command.evidence_ref, ctx)
    return Outcome([subscriber])


def erase_subscriber_data(command: EraseSubscriberData, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Erase now (record it, then destroy the data key), or, inside the retention period, record the
    request and restrict the data until the period ends (``erasure_due_at`` in the result).

    The period runs from the end of the subscriber's last tenure (its disconnection or port-out), or
    from the registration for a subscriber who never held a number."""
    ledger = uow.app
    subscriber_id = command.subscriber_id
    subscriber = uow.subscriber(subscriber_id)
    holdings = uow.holdings(subscriber.identity_key, ctx)
    ended = holdings.service_ended.get(subscriber_id, subscriber.registered_at)
    due = ended + timedelta(days=ledger.policy.identity_retention_days)
    if due > ctx.occurred_at and not subscriber.is_erased:
        if subscriber.erasure_due_at is not None:
            return Outcome([subscriber], {"erasure_due_at": subscriber.erasure_due_at.isoformat()})
        holdings.record_erasure(subscriber_id, ctx)  # refuses while a number is held
        due_at = subscriber.request_erasure(command.legal_basis, due, ctx)
        return Outcome(
            [subscriber, holdings],
            {"erasure_due_at": due_at.isoformat()},
            before_save=lambda: ledger.vault.store.hold_erasure(subscriber_id, _us(due_at)),
        )
    subscriber.erase(command.legal_basis, ctx)
    holdings.record_erasure(subscriber_id, ctx)
    return _erasure(ledger, subscriber, [subscriber, holdings])


def complete_erasure(command: CompleteErasure, uow: UnitOfWork, ctx: Context) -> Outcome:
    """Finish a held erasure whose retention period has ended (``erased`` False when already finished)."""
    subscriber = uow.subscriber(command.subscriber_id)
    if subscriber.is_erased:
        return Outcome([], {"erased": False})
    subscriber.erase("retention period ended", ctx)
    return _erasure(uow.app, subscriber, [subscriber], {"erased": True})


def shred(ledger: Ledger, subscriber_id: UUID, token: str) -> None:
    """Destroy the data key, after releasing the identity salt (which needs the data to be found)."""
    vault = ledger.vault
    data = vault.open(subscriber_id, token)
    if data is not None and "id_number" in data:

        def is_live(other: UUID) -> bool:
            try:
                return not UnitOfWork(ledger).subscriber(other).is_erased
            except errors.SubscriberNotFound:
                return False

        release_identity(vault, data["id_type"], data["id_number"], subscriber_id, is_live)
    vault.destroy(subscriber_id)


def _erasure(ledger: Ledger, subscriber: Subscriber, changed: list[Any], data: dict[str, Any] | None = None) -> Outcome:
    sid, token = subscriber.id, subscriber.personal_data
    return Outcome(
        changed,
        data or {},
        before_save=lambda: ledger.vault.store.mark_erasure_pending(sid),
        after_save=lambda: shred(ledger, sid, token),
    )


def _require_agent(policy: Policy, channel: str, agent_id: str) -> None:
    """Refuse an empty ``agent_id`` on a channel where a person acts for the operator (policy
    ``agent_channels``); self-service channels (an app, the web) have no agent."""
    if not agent_id and channel in policy.agent_channels:
        raise errors.InvalidArgument([("agent_id", f"is required on channel {channel!r} (policy agent_channels)")])


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


# The table.

Handler = Callable[[Any, UnitOfWork, "Context"], Outcome]


@dataclass(frozen=True, slots=True)
class CommandType:
    """A command's dataclass and the function that decides it."""

    command: type[Command]
    handle: Handler


# Keyed by the RPC's name (the dataclass's name); CompleteErasure has no RPC: the erasure pass sends it.
COMMANDS: dict[str, CommandType] = {
    entry.command.__name__: entry
    for entry in (
        CommandType(ProvisionNumbers, provision_numbers),
        CommandType(RegisterSubscriber, register_subscriber),
        CommandType(VerifyIdentity, verify_identity),
        CommandType(ActivateSim, activate_sim),
        CommandType(SwapSim, swap_sim),
        CommandType(SuspendNumber, suspend_number),
        CommandType(ResumeNumber, resume_number),
        CommandType(DisconnectNumber, disconnect_number),
        CommandType(ConfirmDataCleared, confirm_data_cleared),
        CommandType(ReleaseNumber, release_number),
        CommandType(EraseSubscriberData, erase_subscriber_data),
        CommandType(PortOutNumber, port_out_number),
        CommandType(PortInNumber, port_in_number),
        CommandType(ReturnNumber, return_number),
        CommandType(RecordDisconnectionReport, record_disconnection_report),
        CommandType(CompleteErasure, complete_erasure),
    )
}
