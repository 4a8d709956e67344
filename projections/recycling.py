"""The CAMARA Number Recycling decision, a pure function of a number's check row and a date, and the
rows it reads (kept by the numbers view). Tested without a database; ``projections.answers`` composes
the checks from it, and every edge calls that, never re-implementing it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from ledger.domain.rules import CLEARANCE_SEVERITY, Clearance, tenure_clearance
from projections.views import from_us, us
from projections.views.numbers import CheckRow


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
    ported_to: str = ""  # the recipient operator, when the tenure ended with a port-out
    recipient_disconnected_us: int | None = None  # when the recipient disconnected it (ReturnNumber)

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
        """What a recycling check reads of this number, derived from its tenures (``provisioned_us`` is
        when the ledger's records of it begin: provisioned, or ported in)."""
        current = self.tenures[-1].activated_us if self.tenures and self.tenures[-1].disconnected_us is None else None
        ended = [t for t in self.tenures if t.disconnected_us is not None]
        # A port is not a change of holder: a ported tenure's end is no disconnection, the recipient's is.
        ends = [t.disconnected_us for t in ended if not t.ported_to] + [
            t.recipient_disconnected_us for t in ended if t.recipient_disconnected_us is not None
        ]
        last = max((end for end in ends if end is not None), default=None)
        closed = [[t.disconnected_us, t.clearance.value, t.outstanding_holders] for t in ended]
        ported = ended[-1].disconnected_us if self.status == "PORTED_OUT" and ended else None
        return CheckRow(self.number, self.provisioned_us, current, last, orjson.dumps(closed).decode(), ported)


class Decision(NamedTuple):
    """A recycling check's answer for one number (``decide``). The fields are those of the API's
    CheckResult that depend on the number's row and the date; the encoder writes them by name."""

    status: str  # NOT_CHANGED, CHANGED or NO_DATA
    last_disconnected_us: int | None  # when the latest tenure ended (None when none ended)
    clearance: Clearance  # the worst of the tenures closed on or after the date
    outstanding_holders: tuple[str, ...]  # the holders yet to confirm for those tenures
    ported_out_us: int | None  # when the number was ported out, while another operator serves it
    # Why nothing can be told (UNKNOWN_NUMBER, RECORDS_BEGIN_LATER, PORTED_OUT, READ_MODEL_MISMATCH); empty
    # unless the status is NO_DATA.
    no_data_reason: str
    # A subscriber holds the number now (a tenure is open, active or suspended), whatever the date asked.
    held_now: bool

    @property
    def phone_number_changed(self) -> bool:
        """True exactly when the status is CHANGED."""
        return self.status == "CHANGED"

    @property
    def last_disconnected_at(self) -> datetime | None:
        """When the latest tenure ended (None when none ended)."""
        return from_us(self.last_disconnected_us)


# The common answers are shared constants.
NO_DATA = Decision("NO_DATA", None, Clearance.NOT_APPLICABLE, (), None, "UNKNOWN_NUMBER", False)
# The answer for a number whose row failed its keyed hash or was deleted (``UNTRUSTED``, see
# ``projections.seal``): nothing can be told of it (CheckNumber: UNAVAILABLE READ_MODEL_MISMATCH).
MISMATCH = Decision("NO_DATA", None, Clearance.NOT_APPLICABLE, (), None, "READ_MODEL_MISMATCH", False)
UNTRUSTED = CheckRow("", 0, None, None, "[]", None)
_LATER = {
    held: Decision("NO_DATA", None, Clearance.NOT_APPLICABLE, (), None, "RECORDS_BEGIN_LATER", held)
    for held in (False, True)
}
_NOT_CHANGED = Decision("NOT_CHANGED", None, Clearance.NOT_APPLICABLE, (), None, "", True)
_CHANGED = {held: Decision("CHANGED", None, Clearance.NOT_APPLICABLE, (), None, "", held) for held in (False, True)}
_CLEARANCES = {c.value: c for c in Clearance}
_new = tuple.__new__  # ``_new(Decision, values)``: a Decision without namedtuple's Python-level __new__


def twice_code(status: str, held_now: bool) -> int:
    """A check's answer in the recycled-number dialect of Chinese platforms: 0 cannot tell (NO_DATA), 1
    recycled (CHANGED and held now: a new holder), 2 not recycled (NOT_CHANGED), 3 cancelled (CHANGED and
    nobody holds it now)."""
    if status == "NOT_CHANGED":
        return 2
    if status == "CHANGED":
        return 1 if held_now else 3
    return 0


def day_bounds(since: date, zone: ZoneInfo) -> tuple[int, int]:
    """The first microsecond of ``since`` and of the next day in the business time zone (for the last
    day a date can name, 9999-12-31, the day after is computed, not built as a date)."""
    start = us(datetime.combine(since, time.min, tzinfo=zone))
    if since == date.max:
        return start, start + 86_400_000_000
    return start, us(datetime.combine(since + timedelta(days=1), time.min, tzinfo=zone))


def decide(row: CheckRow | None, bounds: tuple[int, int]) -> Decision:
    """CAMARA Number Recycling semantics over a number's check row, for the day ``bounds`` (see
    ``day_bounds``).

    CHANGED when a disconnection on record falls on or after the day began, even if the records begin
    after it (the recipient operator's, for a number that came back; a port itself changes no holder), or
    when the holder at the start of the day differs from today's (a day in a gap with no holder counts as
    changed; the day a tenure began counts as not changed). Otherwise NO_DATA when the number is unknown,
    is served by another operator now (ported out), or its records begin after that day. Clearance is the
    worst of the tenures closed on or after the day began. A row that does not authenticate
    (``UNTRUSTED``) tells nothing: ``MISMATCH``.
    """
    since_start, next_day = bounds
    if row is None:
        return NO_DATA
    if row is UNTRUSTED:
        return MISMATCH
    last, ported, current = row.last_disconnected_us, row.ported_out_us, row.current_activated_us
    if last is not None and last >= since_start:
        worst = Clearance.NOT_APPLICABLE
        outstanding: list[str] = []
        for end, clearance, holders in orjson.loads(row.closed):
            if end >= since_start:
                if CLEARANCE_SEVERITY[clearance] > CLEARANCE_SEVERITY[worst]:
                    worst = _CLEARANCES[clearance]
                for holder in holders:
                    if holder not in outstanding:
                        outstanding.append(holder)
        return _new(Decision, ("CHANGED", last, worst, tuple(outstanding), ported, "", current is not None))
    if ported is not None:
        return _new(Decision, ("NO_DATA", last, Clearance.NOT_APPLICABLE, (), ported, "PORTED_OUT", False))
    if row.provisioned_us >= next_day:
        return _LATER[current is not None]
    held = current is not None and current < next_day  # held on the day asked, and since
    if last is None:
        return _NOT_CHANGED if held else _CHANGED[current is not None]
    return _new(
        Decision,
        ("NOT_CHANGED" if held else "CHANGED", last, Clearance.NOT_APPLICABLE, (), None, "", current is not None),
    )
