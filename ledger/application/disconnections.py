"""What the regulator files are drawn from: the reports a jurisdiction was issued and the permanent
disconnections recorded in a range of positions.

A permanent disconnection is a tenure closed by DisconnectNumber: a port-out (``PortOutNumber``, or a
disconnection with reason PORTED_OUT), a return (``ReturnNumber``: the recipient operator disconnected a
number ported out from here, which is theirs to report) and a suspension are not. A number ported in and
disconnected here is one: the Reassigned Numbers Database order has each provider report "the date of the
most recent permanent disconnection for each number allocated to or ported to that provider" (FCC 18-177,
33 FCC Rcd 12024 para. 35, as quoted in DA 21-67), monthly, "data for numbers permanently disconnected that
were not submitted in the service provider's prior reports" (DA 21-134; 47 CFR 64.1200(l)(2)).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from ledger.domain.indexes import DisconnectionReports, IssuedReport
from ledger.domain.number import Number
from ledger.domain.rules import DisconnectReason

if TYPE_CHECKING:
    from ledger.application.app import LedgerApplication

MAX_PAGE = 100_000
_DISCONNECTED = get_topic(Number.Disconnected)


@dataclass(frozen=True, slots=True)
class PermanentDisconnection:
    """One permanent disconnection: the number, where it was recorded, when it happened and why."""

    number: str
    position: int
    occurred_at: datetime
    reason: str


def issued_reports(app: LedgerApplication, jurisdiction: str) -> list[IssuedReport]:
    """The reports issued for the jurisdiction, oldest first (none yet: empty)."""
    try:
        record: Any = app.repository.get(DisconnectionReports.create_id(jurisdiction))
    except AggregateNotFoundError:
        return []
    return list(record.reports)


def permanent_disconnections(
    app: LedgerApplication, jurisdiction: str, from_position: int, to_position: int, page_size: int = MAX_PAGE
) -> tuple[list[PermanentDisconnection], int]:
    """The permanent disconnections of the jurisdiction's numbers recorded from ``from_position`` on, reading
    at most ``page_size`` positions and none after ``to_position``; and the last position read."""
    stop = min(to_position, from_position + page_size - 1)
    found = []
    numbers: dict[Any, str] = {}
    for n in app.recorder.select_notifications(start=from_position, limit=page_size, stop=stop, topics=[_DISCONNECTED]):
        event: Any = app.mapper.to_domain_event(n)
        if event.reason == DisconnectReason.PORTED_OUT:
            continue
        number = numbers.get(event.originator_id)
        if number is None:
            number = numbers[event.originator_id] = app.repository.get(event.originator_id, version=1).number
        # Calling codes are a prefix code (ITU-T E.164), so the number's own code is the one it starts with.
        if number.startswith(jurisdiction):
            found.append(PermanentDisconnection(number, n.id, event.occurred_at, str(event.reason)))
    return found, stop
