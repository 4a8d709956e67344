"""The public feed: every number and subscriber event in ledger order, catching up and then following new
commits. It never carries personal data nor the internal bookkeeping streams."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.utils import get_topic

from ledger.application.reads import HistoryItem, PersonalState, StreamType, type_name
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber, sealed_personal_data

if TYPE_CHECKING:
    from eventsourcing.domain import DomainEventProtocol

    from ledger.application.app import LedgerApplication

FEED_BATCH = 500
FEED_IDLE_SECONDS = 1.0  # a feed reads again this often without a commit signal (other processes)
NUMBER_CACHE_SIZE = 100_000


def feed_item(position: int, event: DomainEventProtocol[Any], number: str) -> HistoryItem | None:
    """An event as it appears in the public feed (never with personal data), or None for internal events."""
    if isinstance(event, Number.Event):
        subscriber_id = getattr(event, "subscriber_id", None)
        return HistoryItem(
            position, event, StreamType.NUMBER, type_name(event), number, subscriber_id, PersonalState.NONE, None
        )
    if isinstance(event, Subscriber.Event):
        state = PersonalState.NONE if sealed_personal_data(event) is None else PersonalState.WITHHELD
        return HistoryItem(
            position, event, StreamType.SUBSCRIBER, type_name(event), "", event.originator_id, state, None
        )
    return None


class Feed:
    """Follows the ledger for any number of feeds, remembering which number each number stream is."""

    def __init__(self, app: LedgerApplication) -> None:
        self.app = app
        self._numbers: OrderedDict[UUID, str] = OrderedDict()
        self._topics = {t for cls in (Number, Subscriber) for t in _event_topics(cls)}

    def batch(self, last: int, limit: int = FEED_BATCH) -> tuple[int, list[HistoryItem]]:
        """The feed's items among the next ``limit`` events after position ``last``, and the last position
        read (a feed resumes after it; internal events count as read)."""
        items = []
        for n in self.app.recorder.select_notifications(start=last + 1, limit=limit):
            last = n.id
            if n.topic not in self._topics:
                continue
            event = self.app.mapper.to_domain_event(n)
            item = feed_item(n.id, event, self._number_of(event))
            if item is not None:
                items.append(item)
        return last, items

    def _number_of(self, event: Any) -> str:
        if not isinstance(event, Number.Event):
            return ""
        if isinstance(event, Number.Provisioned):
            number: str = event.number
        else:
            cached = self._numbers.get(event.originator_id)
            number = cached if cached is not None else self.app.repository.get(event.originator_id).number
        self._numbers[event.originator_id] = number
        self._numbers.move_to_end(event.originator_id)
        while len(self._numbers) > NUMBER_CACHE_SIZE:
            self._numbers.popitem(last=False)
        return number


def _event_topics(cls: type) -> list[str]:
    return [get_topic(v) for v in vars(cls).values() if isinstance(v, type) and issubclass(v, cls.Event)]  # type: ignore[attr-defined]
