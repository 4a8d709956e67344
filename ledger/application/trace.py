"""The events one request recorded, found from its request record.

A command's events and its request record are saved in one transaction, the record last, and a group
commit appends each command's events together: so they are the events just before the record's position
that carry the same request id. The walk back stops at the first event of another request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledger.application.feed import feed_item
from ledger.application.reads import HistoryItem, PersonalState, StreamType, type_name
from ledger.domain.access import AccessLog
from ledger.domain.indexes import RequestRecord
from ledger.domain.number import Number

if TYPE_CHECKING:
    from ledger.application.app import LedgerApplication

# Events read per step of the walk back from the request record.
WINDOW = 64


def request_events(app: LedgerApplication, request_id: str) -> list[HistoryItem] | None:
    """The number, subscriber and access-log events ``request_id`` recorded, in ledger order (without
    personal data); None when no command with that request id was recorded. The ledger's own
    bookkeeping streams (request records, identity holdings, SIM assignments) are not shown."""
    end = app.reader.position_of(RequestRecord.create_id(request_id), 1)
    if end is None:
        return None
    found: list[tuple[int, Any]] = []
    stop = end
    while stop >= 1:
        start = max(1, stop - WINDOW + 1)
        batch = app.recorder.select_notifications(start=start, limit=stop - start + 1, stop=stop)
        ended = False
        for n in reversed(batch):
            event = app.mapper.to_domain_event(n)
            if getattr(event, "request_id", None) != request_id:
                ended = True
                break
            found.append((n.id, event))
        if ended:
            break
        stop = start - 1
    found.reverse()
    numbers: dict[Any, str] = {}
    items = []
    for position, event in found:
        item = _item(app, position, event, numbers)
        if item is not None:
            items.append(item)
    return items


def _item(app: LedgerApplication, position: int, event: Any, numbers: dict[Any, str]) -> HistoryItem | None:
    if isinstance(event, AccessLog.Event):
        subscriber_id = event.subscriber_id if isinstance(event, AccessLog.Opened) else None
        number = event.number if isinstance(event, AccessLog.PersonalDataRead) else ""
        return HistoryItem(
            position, event, StreamType.ACCESS, type_name(event), number, subscriber_id, PersonalState.NONE, None
        )
    number = ""
    if isinstance(event, Number.Event):
        number = numbers.get(event.originator_id, "")
        if not number:
            if isinstance(event, Number.Provisioned):
                number = event.number
            else:
                number = app.repository.get(event.originator_id).number
            numbers[event.originator_id] = number
    return feed_item(position, event, number)
