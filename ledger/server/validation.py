"""Request validation at the edge: every problem is collected and reported as a field violation."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from ledger.domain import identifiers
from ledger.domain.errors import InvalidArgument
from ledger.domain.rules import HOLDER_PATTERN
from projections.simswap import DEFAULT_AGE_HOURS, MAX_AGE_HOURS, MIN_AGE_HOURS

if TYPE_CHECKING:
    from google.protobuf.message import Message

T = TypeVar("T")

REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
CHANNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
CALLING_CODE = re.compile(r"^\+[1-9][0-9]{0,3}$")
MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")
MAX_POSITION = 2**63 - 1  # positions are stored as signed 64-bit integers
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# The queries one BatchCheck or BatchCheckSimSwap request may hold.
MAX_QUERIES_PER_BATCH = 10_000
_Date = date  # the method ``date`` below hides the type inside the class


class Fields:
    """Collects violations while converting one request; ``done()`` raises them all at once."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []
        self.out_of_range: dict[str, str] = {}  # the fields whose values are only out of their range

    def add(self, field: str, text: str) -> None:
        """Record one violation."""
        self.violations.append((field, text))

    def done(self) -> None:
        """Raise InvalidArgument if anything was wrong (with reason OUT_OF_RANGE when a value was only out of
        its range, as CAMARA answers a date in the future)."""
        if self.violations:
            only_range = len(self.out_of_range) == len(self.violations)
            raise InvalidArgument(self.violations, "OUT_OF_RANGE" if only_range else None, self.out_of_range)

    @classmethod
    def refuse_batch(cls, numbers: Sequence[str], others: Callable[[Fields], object]) -> None:
        """Raise every violation of a batch of queries, its numbers' (``queries[i].number``) first, then
        those ``others`` records: for a batch already found wrong, which reads nothing (an answered batch
        parses only the numbers the read models do not hold)."""
        f = cls()
        for i, number in enumerate(numbers):
            f.msisdn(f"queries[{i}].number", number)
        others(f)
        f.done()

    def _parse(self, field: str, value: str, parse: Callable[[str], T]) -> T | None:
        try:
            return parse(value)
        except identifiers.InvalidValue as e:
            self.add(field, str(e))
            return None

    def request_id(self, value: str) -> str:
        """A caller-chosen idempotency key: 1-128 visible ASCII characters."""
        if not REQUEST_ID.match(value):
            self.add("request_id", "is required: 1-128 visible ASCII characters, no spaces")
        return value

    def msisdn(self, field: str, value: str) -> str:
        """An E.164 number."""
        return self._parse(field, value, identifiers.parse_msisdn) or value

    def iccid(self, field: str, value: str) -> str:
        """A SIM serial with a valid Luhn digit."""
        return self._parse(field, value, identifiers.parse_iccid) or value

    def imsi(self, field: str, value: str) -> str:
        """A 15-digit IMSI."""
        return self._parse(field, value, identifiers.parse_imsi) or value

    def id_number(self, field: str, id_type: str | None, value: str) -> str:
        """An identity document number, checked for its type."""
        if id_type is None:
            return value
        return self._parse(field, value, lambda v: identifiers.normalise_id_number(id_type, v)) or value

    def date(self, field: str, value: str, required: bool = True) -> date | None:
        """A YYYY-MM-DD date."""
        if not value:
            if required:
                self.add(field, "is required (YYYY-MM-DD)")
            return None
        return self._parse(field, value, identifiers.parse_date)

    def past_date(self, field: str, value: str, today: _Date) -> _Date | None:
        """A required YYYY-MM-DD date no later than ``today`` (a later one is OUT_OF_RANGE)."""
        day = self.date(field, value)
        if day is not None and day > today:
            self.add(field, f"is after today ({today.isoformat()} in the ledger's business time zone)")
            self.out_of_range[field] = "OUT_OF_RANGE"
            return None
        return day

    def past_day(self, field: str, value: str, today: _Date) -> _Date:
        """``past_date`` for a single date: ``today`` stands in for an invalid one (``done()`` then raises)."""
        return self.past_date(field, value, today) or today

    def max_age_hours(self, field: str, value: int) -> int:
        """CAMARA SIM Swap maxAge in hours: 1 to 2400, 240 when unset (proto3 cannot tell 0 from unset)."""
        hours = value or DEFAULT_AGE_HOURS
        if not MIN_AGE_HOURS <= hours <= MAX_AGE_HOURS:
            self.add(field, f"must be {MIN_AGE_HOURS} to {MAX_AGE_HOURS} hours")
            self.out_of_range[field] = "OUT_OF_RANGE"
        return hours

    def uuid(self, field: str, value: str) -> UUID:
        """A UUID such as a subscriber_id or tenure_id."""
        try:
            return UUID(value)
        except ValueError:
            self.add(field, "must be a UUID, as returned by the ledger")
            return UUID(int=0)

    def text(self, field: str, value: str, max_len: int, required: bool = True, multiline: bool = False) -> str:
        """Free text: length-limited, no control characters."""
        stripped = value.strip()
        if required and not stripped:
            self.add(field, "is required")
        elif len(value) > max_len:
            self.add(field, f"is longer than {max_len} characters")
        elif any(unicodedata.category(ch) == "Cc" and not (multiline and ch in "\n\t") for ch in value):
            self.add(field, "contains control characters")
        return stripped

    def channel(self, field: str, value: str) -> str:
        """A channel name such as "retail_store"."""
        if not CHANNEL.match(value):
            self.add(field, "is required: 1-64 letters, digits, '_', '.', ':' or '-'")
        return value

    def calling_code(self, field: str, value: str) -> str:
        """A country calling code such as "+1"."""
        if not CALLING_CODE.match(value):
            self.add(field, 'is required: a country calling code such as "+1"')
        return value

    def month(self, field: str, value: str) -> str:
        """A month, YYYY-MM."""
        if not MONTH.match(value):
            self.add(field, "is required: a month, YYYY-MM")
        return value

    def digest(self, field: str, value: str) -> str:
        """A SHA-256 digest, 64 lower-case hex digits."""
        if not DIGEST.match(value):
            self.add(field, "is required: a SHA-256 digest, 64 lower-case hex digits")
        return value

    def position(self, field: str, value: int, minimum: int = 1) -> int:
        """A ledger position (or a count of them) from ``minimum`` up."""
        if not minimum <= value <= MAX_POSITION:
            self.add(field, f"must be between {minimum} and {MAX_POSITION}")
        return value

    def holder(self, field: str, value: str) -> str:
        """A data holder name such as "crm"."""
        if not HOLDER_PATTERN.match(value):
            self.add(field, f"must match {HOLDER_PATTERN.pattern}")
        return value

    def enum(self, field: str, value: int, names: Mapping[int, str]) -> str:
        """A proto enum value mapped to its domain name; UNSPECIFIED and unknown values are refused."""
        name = names.get(value)
        if name is None:
            self.add(field, "is required: choose one of " + ", ".join(sorted(names.values())))
            return ""
        return name

    def timestamp(self, message: Message, field: str, required: bool = False) -> datetime | None:
        """A google.protobuf.Timestamp field (optional unless ``required``) as an aware datetime."""
        if not message.HasField(field):
            if required:
                self.add(field, "is required")
            return None
        ts = getattr(message, field)
        try:
            value: datetime = ts.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            self.add(field, "is not a valid timestamp")
            return None
        if value < EARLIEST:
            self.add(field, "is before 1970-01-01")
            return None
        return value
