"""Plain-text rendering for the people commands: times in the policy's zone and UTC, tables that fit
100 columns, enum names without their prefix, events in words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

WIDTH = 100


@dataclass(frozen=True)
class Times:
    """How times are shown: in the policy's time zone, and in UTC beside it."""

    zone_name: str

    @property
    def zone(self) -> tzinfo:
        """The zone times are shown in."""
        return UTC if self.zone_name == "UTC" else ZoneInfo(self.zone_name)

    @property
    def utc_only(self) -> bool:
        """Whether the policy's zone is UTC (one column then)."""
        return self.zone_name in ("UTC", "Etc/UTC")

    def moment(self, ts: Timestamp) -> datetime | None:
        """A timestamp as an aware datetime (None when unset: seconds and nanos both 0)."""
        if not ts.seconds and not ts.nanos:
            return None
        return ts.ToDatetime(tzinfo=UTC)

    def long(self, ts: Timestamp | datetime | None) -> str:
        """One time in full: local with its offset, then UTC (or '-' when unset)."""
        moment = self.moment(ts) if isinstance(ts, Timestamp) else ts
        if moment is None:
            return "-"
        utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if self.utc_only:
            return utc
        local = moment.astimezone(self.zone)
        offset = local.strftime("%z")
        return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]} ({utc})"

    def columns(self, ts: Timestamp) -> list[str]:
        """A time as table cells: local, then UTC (one cell when the zone is UTC)."""
        moment = self.moment(ts)
        if moment is None:
            return ["-"] if self.utc_only else ["-", "-"]
        utc = moment.astimezone(UTC)
        if self.utc_only:
            return [f"{utc:%Y-%m-%d %H:%M:%S}"]
        return [f"{moment.astimezone(self.zone):%Y-%m-%d %H:%M:%S}", f"{utc:%m-%d %H:%M}"]

    def headers(self) -> list[str]:
        """The column titles of :meth:`columns`."""
        return ["WHEN (UTC)"] if self.utc_only else ["WHEN", "UTC"]

    def legend(self) -> str:
        """The line that says which zone a table's times are in."""
        return "Times in UTC." if self.utc_only else f"Times in {self.zone_name} (WHEN) and in UTC."

    def widths(self) -> list[int]:
        """The widths of :meth:`columns`."""
        return [19] if self.utc_only else [19, 11]


def enum_name(message: Message, field: str) -> str:
    """The name of an enum field's value without the enum's prefix (CHECK_STATUS_CHANGED -> CHANGED)."""
    descriptor = message.DESCRIPTOR.fields_by_name[field].enum_type
    value = getattr(message, field)
    found = descriptor.values_by_number.get(value)
    if found is None:
        return str(value)
    prefix = descriptor.values_by_number[0].name.removesuffix("UNSPECIFIED") if 0 in descriptor.values_by_number else ""
    return found.name.removeprefix(prefix)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking a cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int | None]) -> list[str]:
    """Left-aligned columns within 100 columns: a column is as wide as its widest cell up to its width;
    the columns of width None share what the others leave (cells that do not fit are clipped)."""

    def natural(i: int) -> int:
        return max([len(headers[i])] + [len(r[i]) for r in rows])

    shown = [min(natural(i), w) if w is not None else 0 for i, w in enumerate(widths)]
    flexible = [i for i, w in enumerate(widths) if w is None]
    left = WIDTH - sum(shown) - (len(widths) - 1)
    # The narrowest flexible columns first: what one does not need goes to the next.
    for n, i in enumerate(sorted(flexible, key=natural)):
        share = max(len(headers[i]), left // (len(flexible) - n))
        shown[i] = min(natural(i), share)
        left -= shown[i]
    lines = []
    for row in [list(headers), *rows]:
        cells = [clip(cell, shown[i]).ljust(shown[i]) for i, cell in enumerate(row)]
        lines.append(" ".join(cells).rstrip())
    return lines


def plural(count: int, noun: str) -> str:
    """``1 event``, ``2 events``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def pairs(items: Sequence[tuple[str, str]]) -> list[str]:
    """``name  value`` lines, the values aligned."""
    width = max((len(k) for k, _ in items), default=0)
    return [f"  {k.ljust(width)}  {v}" for k, v in items]


def short_id(value: str) -> str:
    """The first 8 characters of an identifier, enough to tell holders apart on one screen."""
    return value[:8] if value else "-"


def plain(value: Any) -> str:
    """A Struct value in words."""
    if isinstance(value, list):
        return ", ".join(plain(v) for v in value) or "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
