"""Shared vocabulary of the domain: enumerations, the event base class and time-order checks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from ledger.domain.errors import OccurredAtOutOfOrder


class NumberStatus(StrEnum):
    """Lifecycle state of a number."""

    AVAILABLE = "AVAILABLE"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    QUARANTINED = "QUARANTINED"


class SuspensionReason(StrEnum):
    """Why a number was suspended."""

    FRAUD = "FRAUD"
    SPAM = "SPAM"
    UNVERIFIED_IDENTITY = "UNVERIFIED_IDENTITY"
    SUBSCRIBER_REQUEST = "SUBSCRIBER_REQUEST"
    LOST_SIM = "LOST_SIM"
    NON_PAYMENT = "NON_PAYMENT"
    REGULATOR_ORDER = "REGULATOR_ORDER"


class DisconnectReason(StrEnum):
    """Why a tenure was closed."""

    SUBSCRIBER_REQUEST = "SUBSCRIBER_REQUEST"
    NON_PAYMENT = "NON_PAYMENT"
    FRAUD = "FRAUD"
    UNVERIFIED_IDENTITY = "UNVERIFIED_IDENTITY"
    REGULATOR_ORDER = "REGULATOR_ORDER"
    PORTED_OUT = "PORTED_OUT"
    OTHER = "OTHER"


class SimSwapReason(StrEnum):
    """Why a number moved to a new SIM."""

    LOST_OR_STOLEN = "LOST_OR_STOLEN"
    DAMAGED = "DAMAGED"
    UPGRADE = "UPGRADE"
    ESIM_TRANSFER = "ESIM_TRANSFER"
    OTHER = "OTHER"


class VerificationMethod(StrEnum):
    """How a real-name identity was verified."""

    ID_CARD_READER = "ID_CARD_READER"
    ONLINE_PHOTO_LIVENESS = "ONLINE_PHOTO_LIVENESS"
    IN_PERSON_MANUAL = "IN_PERSON_MANUAL"
    PASSPORT_CHECK = "PASSPORT_CHECK"


class Clearance(StrEnum):
    """State of a closed tenure's data held by other systems."""

    NOT_APPLICABLE = "NOT_APPLICABLE"
    CLEARED = "CLEARED"
    PENDING = "PENDING"
    VIOLATION = "VIOLATION"


# Worst first: used to pick the clearance that wins over several tenures.
CLEARANCE_SEVERITY = {
    Clearance.NOT_APPLICABLE: 0,
    Clearance.CLEARED: 1,
    Clearance.PENDING: 2,
    Clearance.VIOLATION: 3,
}


class LedgerEvent(Aggregate.Event):
    """Fields every ledger event carries: when it happened, who caused it, and which request."""

    occurred_at: datetime
    actor: str
    request_id: str


def stable_id(path: str) -> UUID:
    """Derive a stream id from a natural key, so that the same key always names the same stream."""
    return uuid5(NAMESPACE_URL, path)


def check_order(last: datetime, occurred_at: datetime, what: str) -> None:
    """Refuse an event that would happen before the stream's last event."""
    if occurred_at < last:
        raise OccurredAtOutOfOrder(
            [
                (
                    "occurred_at",
                    f"{occurred_at.isoformat()} is earlier than the last event of this {what} ({last.isoformat()})",
                )
            ]
        )
