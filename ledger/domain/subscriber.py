"""The Subscriber aggregate: a real-name identity, its verifications and the erasure of its data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from ledger.domain import errors
from ledger.domain.base import LedgerEvent, check_order, stable_id

if TYPE_CHECKING:
    from ledger.domain.context import Context


@dataclass(frozen=True)
class Verification:
    """One recorded identity verification."""

    method: str
    channel: str
    agent_id: str
    evidence_ref: str
    verified_at: datetime


class Subscriber(Aggregate):
    """A person or company. Personal data is held only as ciphertext under the subscriber's own key."""

    class Event(LedgerEvent):
        """Base class of the subscriber's events."""

    class Registered(Event, Aggregate.Created):
        """The subscriber was registered. ``personal_data`` is ciphertext; ``identity_key`` is an HMAC."""

        id_type: str
        identity_key: str
        personal_data: str

    class IdentityVerified(Event):
        """The subscriber's real-name identity was verified."""

        method: str
        channel: str
        agent_id: str
        evidence_ref: str

    class ErasureRequested(Event):
        """Erasure was requested inside the retention period: personal data is restricted (no processing
        but storage, disclosed only for a legal hold) until ``due_at``, when the key is destroyed."""

        legal_basis: str
        due_at: datetime

    class PersonalDataErased(Event):
        """The subscriber's data key was destroyed: personal data is unreadable from now on."""

        legal_basis: str

    @event(Registered)
    def __init__(
        self,
        id_type: str,
        identity_key: str,
        personal_data: str,
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        self.id_type = id_type
        self.identity_key = identity_key
        self.personal_data = personal_data
        self.registered_at = occurred_at
        self.last_occurred_at = occurred_at
        self.verifications: list[Verification] = []
        self.erased_at: datetime | None = None
        self.erasure_due_at: datetime | None = None

    @staticmethod
    def id_for_request(request_id: str) -> UUID:
        """A subscriber's id, derived from the request_id of the RegisterSubscriber that created it, so a
        client importing history can refer to subscribers it registered without waiting for the answer."""
        return stable_id(f"/subscribers/registered-by/{request_id}")

    @classmethod
    def register(
        cls, subscriber_id: UUID, id_type: str, identity_key: str, personal_data: str, ctx: Context
    ) -> Subscriber:
        """Create a subscriber with an id chosen by the caller (its data key is made under that id)."""
        return cls._create(
            cls.Registered,
            id=subscriber_id,
            id_type=id_type,
            identity_key=identity_key,
            personal_data=personal_data,
            **ctx.fields(),
        )

    @property
    def is_erased(self) -> bool:
        """True once the subscriber's personal data was erased."""
        return self.erased_at is not None

    @property
    def is_restricted(self) -> bool:
        """True while an erasure is held by the retention period (not yet erased)."""
        return self.erasure_due_at is not None and self.erased_at is None

    def verified_at(self) -> datetime | None:
        """When the identity was first verified, or None."""
        return self.verifications[0].verified_at if self.verifications else None

    def is_verified_at(self, moment: datetime) -> bool:
        """Whether the identity had been verified at that moment."""
        first = self.verified_at()
        return first is not None and first <= moment

    def ensure_may_hold_number(self, moment: datetime) -> None:
        """Refuse a subscriber who may not start a tenure at that moment."""
        self._ensure_not_erased()
        if not self.is_verified_at(moment):
            raise errors.IdentityNotVerified(
                f"subscriber {self.id} has no identity verification at or before {moment.isoformat()}"
            )

    def verify_identity(self, method: str, channel: str, agent_id: str, evidence_ref: str, ctx: Context) -> None:
        """Record a verification; an erased subscriber can no longer be verified."""
        check_order(self.last_occurred_at, ctx.occurred_at, "subscriber")
        self._ensure_not_erased()
        self._identity_verified(
            method=method, channel=channel, agent_id=agent_id, evidence_ref=evidence_ref, **ctx.fields()
        )

    def _ensure_not_erased(self) -> None:
        if self.is_erased:
            raise errors.SubscriberErased(f"subscriber {self.id} was erased")
        if self.erasure_due_at is not None:
            raise errors.SubscriberErased(
                f"subscriber {self.id} asked for erasure; their data is kept, restricted, until "
                f"{self.erasure_due_at.isoformat()} and serves nothing else"
            )

    def request_erasure(self, legal_basis: str, due_at: datetime, ctx: Context) -> datetime:
        """Record an erasure that the retention period holds until ``due_at``; a repeated request changes
        nothing. Returns when the erasure is due."""
        check_order(self.last_occurred_at, ctx.occurred_at, "subscriber")
        if self.is_erased:
            raise errors.SubscriberErased(f"subscriber {self.id} was already erased")
        if self.erasure_due_at is None:
            self._erasure_requested(legal_basis=legal_basis, due_at=due_at, **ctx.fields())
        return self.erasure_due_at or due_at

    def erase(self, legal_basis: str, ctx: Context) -> None:
        """Record the erasure of personal data; the caller destroys the data key."""
        check_order(self.last_occurred_at, ctx.occurred_at, "subscriber")
        if self.is_erased:
            raise errors.SubscriberErased(f"subscriber {self.id} was already erased")
        self._personal_data_erased(legal_basis=legal_basis, **ctx.fields())

    @event(IdentityVerified)
    def _identity_verified(
        self,
        method: str,
        channel: str,
        agent_id: str,
        evidence_ref: str,
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        self.verifications.append(Verification(method, channel, agent_id, evidence_ref, occurred_at))
        self.last_occurred_at = occurred_at

    @event(ErasureRequested)
    def _erasure_requested(
        self, legal_basis: str, due_at: datetime, occurred_at: datetime, actor: str, request_id: str
    ) -> None:
        self.erasure_due_at = due_at
        self.last_occurred_at = occurred_at

    @event(PersonalDataErased)
    def _personal_data_erased(self, legal_basis: str, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.erased_at = occurred_at
        self.last_occurred_at = occurred_at


# The events that carry personal data (sealed under the subscriber's data key, in ``personal_data``):
# compliance reads disclose or withhold it, the public feed never carries it, exports decrypt it on
# request. A new event that carries personal data is added here, and all three follow.
PERSONAL_DATA_EVENTS: frozenset[type[Subscriber.Event]] = frozenset({Subscriber.Registered})
PERSONAL_DATA_TOPICS = frozenset(get_topic(cls) for cls in PERSONAL_DATA_EVENTS)


def sealed_personal_data(event: Any) -> str | None:
    """The sealed personal data an event carries, or None for an event that carries none."""
    if type(event) in PERSONAL_DATA_EVENTS:
        token: str = event.personal_data
        return token
    return None
