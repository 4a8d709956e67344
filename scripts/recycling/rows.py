"""recycling_check's input: CSV or JSON-lines rows, checked by shape (or in full), in BatchCheck batches.

A row whose number and date have the shape is sent as it is; anything else is checked in full here first,
and a malformed row is kept with its line number and the reason it is skipped.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import IO, Any

import orjson

from ledger.cli import UsageError
from ledger.domain.identifiers import InvalidValue, parse_date, parse_msisdn

# What a row must look like to be sent as it is; anything else is checked in full here first. The server
# checks every number and date in full again, and a request it refuses is checked here row by row
# (see ``recycling_check.Feed``).
NUMBER_SHAPE = re.compile(r"\+[1-9][0-9]{4,14}")
DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Dates of that shape seen (and not after today) are kept, so a date is matched once, not on every row;
# a file of more distinct dates than this checks the others on every row.
MAX_DATES_KEPT = 10_000

# A row to check: its line, its fields (a list as long as the CSV header, else a dict as csv.DictReader
# makes it, or a JSON object), and the number and date sent.
Row = tuple[int, Any, str, str]


def full_check(number: Any, since: Any, today: date) -> tuple[str, str] | str:
    """The number (E.164) and date to send for a row, or why the row is skipped."""
    try:
        e164 = parse_msisdn(str(number or ""))
        day = parse_date(str(since or ""))
    except InvalidValue as e:
        return str(e)
    if day > today:  # the ledger refuses the whole request (OUT_OF_RANGE)
        return f"since_date {day.isoformat()} is after today ({today.isoformat()})"
    return e164, day.isoformat()


class Batch:
    """Rows for one BatchCheck request, and the rows skipped since the previous batch: those are reported
    when this batch is written, so that stderr keeps the input's order."""

    __slots__ = ("rows", "skipped")

    def __init__(self, rows: list[Row], skipped: list[tuple[int, str]]) -> None:
        self.rows = rows
        self.skipped = skipped

    def request(self) -> bytes:
        """The BatchCheck request for these rows, as wire bytes (see ``encode_queries``)."""
        return encode_queries(self.rows)


def encode_queries(rows: list[Row]) -> bytes:
    """``BatchCheckRequest(queries=[CheckQuery(number=n, since_date=d), ...]).SerializeToString()``, built
    as text: each number and date sent is ASCII and shorter than 128 characters (E.164 or the shape
    checked, YYYY-MM-DD), so every length is one byte."""
    return "".join([f"\n{chr(len(n) + 14)}\n{chr(len(n))}{n}\x12\n{d}" for _, _, n, d in rows]).encode("ascii")


class Source:
    """The input's rows, read as CSV or JSON lines, in batches; malformed rows are kept as skipped.

    A CSV header without ``number`` and ``since_date`` is refused when the source is made, at once, by the
    caller's thread."""

    def __init__(self, stream: IO[str], fmt: str, today: date, size: int) -> None:
        self.today = today
        self.size = size
        self.skipped: list[tuple[int, str]] = []
        self.full_checks = False  # every row checked in full, not only by shape
        self.header: list[str] = []
        self.records: Iterator[tuple[int, Any, Any, Any]]
        if fmt == "csv":
            reader = csv.reader(stream)
            self.header = next(reader, [])
            missing = {"number", "since_date"} - set(self.header)
            if missing:
                raise UsageError(
                    f"the CSV header {','.join(self.header) or '(empty file)'!r} lacks "
                    f"{', '.join(sorted(missing))}; the first line must name the columns, e.g. number,since_date"
                )
            self.records = self._csv(reader)
        else:
            self.records = self._json_lines(stream)

    def _csv(self, reader: Any) -> Iterator[tuple[int, Any, Any, Any]]:
        header = self.header
        width = len(header)
        # As csv.DictReader: the last column of a name wins.
        at_number = width - 1 - header[::-1].index("number")
        at_since = width - 1 - header[::-1].index("since_date")
        for fields in reader:
            if len(fields) == width:
                yield reader.line_num, fields, fields[at_number], fields[at_since]
            elif fields:  # blank lines are skipped, as csv.DictReader does
                record = _as_dict(header, fields)
                yield reader.line_num, record, record.get("number"), record.get("since_date")

    def _json_lines(self, stream: IO[str]) -> Iterator[tuple[int, Any, Any, Any]]:
        for line, text in enumerate(stream, start=1):
            if not text.strip():
                continue
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                self.skipped.append((line, f"not JSON ({e})"))
                continue
            if not isinstance(record, dict):
                self.skipped.append((line, "row is not an object"))
                continue
            yield line, record, record.get("number"), record.get("since_date")

    def __iter__(self) -> Iterator[Batch]:
        """The batches, in order; the last may have skipped rows only."""
        today, iso_today, size = self.today, self.today.isoformat(), self.size
        number_shape, date_shape = NUMBER_SHAPE.fullmatch, DATE_SHAPE.fullmatch
        dates: set[str] = set()  # dates of that shape, not after today, seen (a file holds few)
        rows: list[Row] = []
        full = self.full_checks
        for record in self.records:
            line, fields, number, since = record
            if (
                not full
                and type(number) is str
                and type(since) is str
                and number_shape(number)
                and (since in dates or (since <= iso_today and date_shape(since)))
            ):
                if len(dates) < MAX_DATES_KEPT:
                    dates.add(since)
                rows.append(record)
            else:
                checked = full_check(number, since, today)
                if isinstance(checked, str):
                    self.skipped.append((line, checked))
                    continue
                rows.append((line, fields, *checked))
            if len(rows) == size:
                yield Batch(rows, self.skipped)
                rows, self.skipped, full = [], [], self.full_checks
        if rows or self.skipped:
            yield Batch(rows, self.skipped)
            self.skipped = []


def _as_dict(header: list[str], fields: list[str]) -> dict[Any, Any]:
    """A row of another length than the header, as csv.DictReader makes it."""
    record: dict[Any, Any] = dict(zip(header, fields, strict=False))
    if len(header) < len(fields):
        record[None] = fields[len(header) :]
    else:
        for name in header[len(fields) :]:
            record[name] = None
    return record


def count_rows(path: Path, fmt: str) -> int:
    """Data rows in a file (for the progress bar): lines with more than white space, less the CSV header."""
    with path.open("rb") as f:  # counted as bytes, without decoding, each line's test in C
        lines = Counter(map(bytes.isspace, f))[False]
    return max(0, lines - 1) if fmt == "csv" else lines
