"""The record of who read a subscriber's personal data, or compared data with it, when, and why."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.base import LedgerEvent, stable_id

if TYPE_CHECKING:
    from ledger.domain.context import Context


class AccessLog(Aggregate):
    """One subscriber's personal-data reads; each disclosure is recorded before the data is returned."""

    class Event(LedgerEvent):
        """Base class of the access log's events."""

    class Opened(Event, Aggregate.Created):
        """The subscriber's data was read for the first time."""

        subscriber_id: UUID

    class PersonalDataRead(Event):
        """The actor read the subscriber's personal data, in the history of ``number``, for ``purpose``."""

        number: str
        purpose: str

    class IdentityMatched(Event):
        """The actor compared data with the subscriber's, as the holder of ``number`` (MatchIdentity):
        ``results`` maps each field asked to its result (TRUE, FALSE or NOT_AVAILABLE), with the name's
        score when it did not match. Never the values sent nor the values held."""

        number: str
        results: dict[str, str]
        name_match_score: int | None

    @staticmethod
    def create_id(subscriber_id: UUID, **_: object) -> UUID:
        """Stream id of a subscriber's access log."""
        return stable_id(f"/access/{subscriber_id}")

    @event(Opened)
    def __init__(self, subscriber_id: UUID, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.subscriber_id = subscriber_id
        self.reads = 0

    def record_read(self, number: str, purpose: str, ctx: Context) -> None:
        """Record one read."""
        self._read(number=number, purpose=purpose, **ctx.fields())

    def record_match(self, number: str, results: dict[str, str], name_match_score: int | None, ctx: Context) -> None:
        """Record one comparison (which fields, their results; no value)."""
        self._matched(number=number, results=dict(results), name_match_score=name_match_score, **ctx.fields())

    @event(IdentityMatched)
    def _matched(
        self,
        number: str,
        results: dict[str, str],
        name_match_score: int | None,
        occurred_at: datetime,
        actor: str,
        request_id: str,
    ) -> None:
        pass

    @event(PersonalDataRead)
    def _read(self, number: str, purpose: str, occurred_at: datetime, actor: str, request_id: str) -> None:
        self.reads += 1
