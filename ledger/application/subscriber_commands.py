"""The subscriber's lifecycle commands, one method per RPC (registration, identity verification, erasure),
run like the number's (see ``commands``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.application.pipeline import Command
from ledger.application.unit_of_work import CommandResult, Outcome, UnitOfWork
from ledger.domain import errors
from ledger.domain.indexes import IdentityHoldings
from ledger.domain.subscriber import Subscriber
from ledger.keys.identity import plan_identity, release_identity

if TYPE_CHECKING:
    from ledger.application.app import Clock
    from ledger.domain.context import Context
    from ledger.keys.vault import PersonalDataVault
    from ledger.policy import Policy


class SubscriberCommands:
    """RegisterSubscriber, VerifyIdentity and EraseSubscriberData; the base of ``LifecycleCommands``."""

    policy: Policy
    vault: PersonalDataVault
    clock: Clock

    def run(self, command: Command, unit: UnitOfWork | None) -> CommandResult:
        """Run a command through the pipeline (the application provides it)."""
        raise NotImplementedError

    def require_agent(self, channel: str, agent_id: str) -> None:
        """Refuse an empty ``agent_id`` on a channel where a person acts for the operator (policy
        ``agent_channels``); self-service channels (an app, the web) have no agent."""
        if not agent_id and channel in self.policy.agent_channels:
            raise errors.InvalidArgument([("agent_id", f"is required on channel {channel!r} (policy agent_channels)")])

    def get_subscriber(self, subscriber_id: UUID) -> Subscriber:
        """The subscriber's aggregate (the application provides it)."""
        raise NotImplementedError

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
            key, salt = plan_identity(
                self.vault,
                id_type,
                id_number,
                subscriber_id,
                legacy_in_use=lambda legacy: uow.exists(IdentityHoldings.create_id(legacy)),
            )
            data_key = uow.ensure_data_key(subscriber_id, salt)
            subscriber = Subscriber.register(
                subscriber_id,
                id_type=id_type,
                identity_key=key,
                personal_data=self.vault.seal(subscriber_id, personal, data_key),
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
        """Erase now (record it, then destroy the data key), or, inside the retention period, record the
        request and restrict the data until the period ends (``erasure_due_at`` in the result).

        The period runs from the end of the subscriber's last tenure (its disconnection or port-out), or
        from the registration for a subscriber who never held a number."""

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            subscriber = uow.subscriber(subscriber_id)
            holdings = uow.holdings(subscriber.identity_key, ctx)
            ended = holdings.service_ended.get(subscriber_id, subscriber.registered_at)
            due = ended + timedelta(days=self.policy.identity_retention_days)
            if due > ctx.occurred_at and not subscriber.is_erased:
                if subscriber.erasure_due_at is not None:
                    return Outcome([subscriber], {"erasure_due_at": subscriber.erasure_due_at.isoformat()})
                holdings.record_erasure(subscriber_id, ctx)  # refuses while a number is held
                due_at = subscriber.request_erasure(legal_basis, due, ctx)
                return Outcome(
                    [subscriber, holdings],
                    {"erasure_due_at": due_at.isoformat()},
                    before_save=lambda: self.vault.store.hold_erasure(subscriber_id, _us(due_at)),
                )
            subscriber.erase(legal_basis, ctx)
            holdings.record_erasure(subscriber_id, ctx)
            return self._erasure(subscriber, [subscriber, holdings])

        args = {"subscriber_id": subscriber_id, "legal_basis": legal_basis}
        streams = (subscriber_id,)
        return self.run(Command("EraseSubscriberData", request_id, actor, occurred_at, args, handle, streams), unit)

    def complete_erasure(self, *, subscriber_id: UUID, actor: str) -> bool:
        """Finish a held erasure whose retention period has ended (destroy the key, recorded as an event);
        False when it is not due yet or was finished already. The request id is derived from the
        subscriber, so running it twice (two passes, two processes) records it once."""
        subscriber = self.get_subscriber(subscriber_id)
        due = subscriber.erasure_due_at
        if subscriber.is_erased or due is None or due > self.clock.now():
            return False

        def handle(uow: UnitOfWork, ctx: Context) -> Outcome:
            subscriber = uow.subscriber(subscriber_id)
            if subscriber.is_erased:
                return Outcome([], {"erased": False})
            subscriber.erase("retention period ended", ctx)
            return self._erasure(subscriber, [subscriber], {"erased": True})

        args = {"subscriber_id": subscriber_id}
        command = Command("CompleteErasure", f"erase-due/{subscriber_id}", actor, None, args, handle)
        result = self.run(command, None)
        return bool(result.data.get("erased")) and not result.replayed

    def _erasure(self, subscriber: Subscriber, changed: list[Any], data: dict[str, Any] | None = None) -> Outcome:
        sid, token = subscriber.id, subscriber.personal_data
        return Outcome(
            changed,
            data or {},
            before_save=lambda: self.vault.store.mark_erasure_pending(sid),
            after_save=lambda: self.shred(sid, token),
        )

    def shred(self, subscriber_id: UUID, token: str) -> None:
        """Destroy the data key, after releasing the identity salt (which needs the data to be found)."""
        data = self.vault.open(subscriber_id, token)
        if data is not None and "id_number" in data:
            release_identity(self.vault, data["id_type"], data["id_number"], subscriber_id, self._is_live)
        self.vault.destroy(subscriber_id)

    def _is_live(self, subscriber_id: UUID) -> bool:
        try:
            return not self.get_subscriber(subscriber_id).is_erased
        except errors.SubscriberNotFound:
            return False


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)
