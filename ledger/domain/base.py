"""The event base class, stream ids from natural keys and time-order checks."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from ledger.domain.errors import OccurredAtOutOfOrder

__all__ = ["LedgerEvent", "check_order", "stable_id"]


class LedgerEvent(Aggregate.Event):
    """Fields every ledger event carries: when it happened, who caused it, and which request."""

    occurred_at: datetime
    actor: str
    request_id: str


# A command derives each of its ids several times (its streams, each load, each new aggregate): the ids of
# recent keys are kept (a UUID is immutable, so sharing one is safe).
@lru_cache(maxsize=8192)
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
