"""The subscriber's lifecycle commands, one method per RPC (registration, identity verification, erasure),
run like the number's (see ``commands``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.application.pipeline import Command
from ledger.application.unit_of_work import CommandResult, Outcome, UnitOfWork
from ledger.domain import errors
from ledger.domain.subscriber import Subscriber

if TYPE_CHECKING:
    from ledger.config import Policy
    from ledger.domain.context import Context
    from ledger.vault import PersonalDataVault


class SubscriberCommands:
    """RegisterSubscriber, VerifyIdentity and EraseSubscriberData; the base of ``LifecycleCommands``."""

    policy: Policy
    vault: PersonalDataVault

    def run(self, command: Command, unit: UnitOfWork | None) -> CommandResult:
        """Run a command through the pipeline (the application provides it)."""
        raise NotImplementedError

    def require_agent(self, channel: str, agent_id: str) -> None:
        """Refuse an empty ``agent_id`` on a channel where a person acts for the operator (policy
        ``agent_channels``); self-service channels (an app, the web) have no agent."""
        if not agent_id and channel in self.policy.agent_channels:
            raise errors.InvalidArgument([("agent_id", f"is required on channel {channel!r} (policy agent_channels)")])

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
        self.require_agent(channel, agent_id)
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
