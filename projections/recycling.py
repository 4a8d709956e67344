"""The CAMARA Number Recycling decision, a pure function of a number's check row and a date, and the
rows it reads (kept by the numbers view). Tested without a database; servicers call it, never
re-implement it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from ledger.domain.base import CLEARANCE_SEVERITY, Clearance
from ledger.domain.rules import tenure_clearance
from projections.views import from_us, us


@dataclass(frozen=True)
class TenureRow:
    """One tenure as the numbers view holds it."""

    tenure_id: str
    subscriber_id: str
    activated_us: int
    disconnected_us: int | None
    quarantine_until_us: int | None
    required_holders: list[str]
    outstanding_holders: list[str]
    confirmations: list[list[Any]]
    released_us: int | None
    override_reason: str
    violation: bool

    @property
    def clearance(self) -> Clearance:
        """Clearance of the tenure (NOT_APPLICABLE while open)."""
        return tenure_clearance(self.disconnected_us is None, self.violation, bool(self.outstanding_holders))


@dataclass(frozen=True)
class NumberRow:
    """A number and its tenures, oldest first."""

    number: str
    status: str
    provisioned_us: int
    tenures: list[TenureRow] = field(default_factory=list)

    def check_row(self) -> CheckRow:
        """What a recycling check reads of this number, derived from its tenures."""
        current = self.tenures[-1].activated_us if self.tenures and self.tenures[-1].disconnected_us is None else None
        ended = [t for t in self.tenures if t.disconnected_us is not None]
        last = max((t.disconnected_us for t in ended if t.disconnected_us is not None), default=None)
        closed = [[t.disconnected_us, t.clearance.value, t.outstanding_holders] for t in ended]
        return (self.number, self.provisioned_us, current, last, orjson.dumps(closed).decode())


# What a recycling check reads of a number (the numbers view keeps it on the number's row):
# (number, provisioned_us, current_activated_us, last_disconnected_us, closed JSON).
CheckRow = tuple[str, int, int | None, int | None, str]
# A check's answer for one number: (status, last_disconnected_us, clearance, outstanding holders), with
# status NOT_CHANGED, CHANGED or NO_DATA. The common answers are shared constants.
Decision = tuple[str, int | None, Clearance, tuple[str, ...]]
NO_DATA: Decision = ("NO_DATA", None, Clearance.NOT_APPLICABLE, ())
_NOT_CHANGED: Decision = ("NOT_CHANGED", None, Clearance.NOT_APPLICABLE, ())
_CHANGED: Decision = ("CHANGED", None, Clearance.NOT_APPLICABLE, ())
_CLEARANCES = {c.value: c for c in Clearance}


class CheckAnswer(NamedTuple):
    """The answer to one recycling check."""

    number: str
    status: str  # NOT_CHANGED, CHANGED, NO_DATA
    last_disconnected_us: int | None
    clearance: Clearance
    outstanding_holders: tuple[str, ...]
    as_of_position: int

    @property
    def phone_number_changed(self) -> bool:
        """True exactly when the status is CHANGED."""
        return self.status == "CHANGED"

    @property
    def last_disconnected_at(self) -> datetime | None:
        """When the latest tenure ended (None when none ended)."""
        return from_us(self.last_disconnected_us)


def day_bounds(since: date, zone: ZoneInfo) -> tuple[int, int]:
    """The first microsecond of ``since`` and of the next day in the business time zone."""
    start = datetime.combine(since, time.min, tzinfo=zone)
    following = datetime.combine(since + timedelta(days=1), time.min, tzinfo=zone)
    return us(start), us(following)


def decide(row: CheckRow | None, bounds: tuple[int, int]) -> Decision:
    """CAMARA Number Recycling semantics over a number's check row, for the day ``bounds`` (see
    ``day_bounds``).

    CHANGED when the holder at the start of the day differs from today's or any tenure ended on or after
    it (a day in a gap with no holder counts as changed; the day a tenure began counts as not changed).
    NO_DATA when the number is unknown or its records begin after that day. Clearance is the worst of
    the tenures closed on or after the day began.
    """
    since_start, next_day = bounds
    if row is None or row[1] >= next_day:
        return NO_DATA
    current, last = row[2], row[3]
    if last is None or last < since_start:
        held = current is not None and current < next_day
        if last is None:
            return _NOT_CHANGED if held else _CHANGED
        return ("NOT_CHANGED" if held else "CHANGED", last, Clearance.NOT_APPLICABLE, ())
    worst = Clearance.NOT_APPLICABLE
    outstanding: list[str] = []
    for end, clearance, holders in orjson.loads(row[4]):
        if end >= since_start:
            if CLEARANCE_SEVERITY[clearance] > CLEARANCE_SEVERITY[worst]:
                worst = _CLEARANCES[clearance]
            for holder in holders:
                if holder not in outstanding:
                    outstanding.append(holder)
    return ("CHANGED", last, worst, tuple(outstanding))
