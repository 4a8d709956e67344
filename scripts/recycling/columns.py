"""recycling_check's output: the answer's columns of each dialect, written after the input's as CSV or JSON
lines."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from datetime import UTC
from functools import lru_cache
from typing import IO, Any, NamedTuple

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.v1 import ledger_pb2
from projections.recycling import twice_code
from scripts.recycling.rows import Row

OUTPUT_FIELDS = (
    "status",
    "phone_number_changed",
    "clearance",
    "outstanding_holders",
    "last_disconnected_at",
    "no_data_reason",
    "ported_out_at",
)
# The columns each dialect adds to those.
DIALECTS: dict[str, tuple[str, ...]] = {"camara": (), "twice": ("held_now", "twice_code")}


def _names(enum: Any, prefix: str) -> list[str]:
    """An enum's value names without their prefix, indexed by value (a list is the cheapest lookup)."""
    names = [""] * (max(v.number for v in enum.DESCRIPTOR.values) + 1)
    for v in enum.DESCRIPTOR.values:
        names[v.number] = v.name.removeprefix(prefix)
    return names


STATUS = _names(ledger_pb2.CheckStatus, "CHECK_STATUS_")
CLEARANCE = _names(ledger_pb2.Clearance, "CLEARANCE_")
NO_DATA_REASONS = ["", *_names(ledger_pb2.NoDataReason, "NO_DATA_REASON_")[1:]]  # unset: not NO_DATA
# Holders are outstanding only for a PENDING or VIOLATION clearance (none for CLEARED, and no tenure to
# clear for NOT_APPLICABLE); reading the repeated field costs more than all the other columns together.
WITH_HOLDERS = frozenset((ledger_pb2.CLEARANCE_PENDING, ledger_pb2.CLEARANCE_VIOLATION))

# A CSV field the csv module would quote (the delimiter is counted apart).
_NEEDS_QUOTES = re.compile('["\r\n]').search


class Values(NamedTuple):
    """How the answer's columns that are not text are written: for CSV or for JSON."""

    flag: tuple[Any, Any]
    holders: Callable[[Iterable[str]], Any]
    code: Callable[[int], Any]  # the twice dialect's code


CSV_VALUES = Values(("false", "true"), ";".join, str)
JSON_VALUES = Values((False, True), list, int)


def answer(result: ledger_pb2.CheckResult, values: Values) -> tuple[Any, ...]:
    """A result's output columns, in the order of ``OUTPUT_FIELDS``."""
    clearance = result.clearance
    return (
        STATUS[result.status],
        values.flag[result.phone_number_changed],
        CLEARANCE[clearance],
        values.holders(result.outstanding_holders if clearance in WITH_HOLDERS else ()),
        _time(result.last_disconnected_at) if result.HasField("last_disconnected_at") else "",
        NO_DATA_REASONS[result.no_data_reason],
        _time(result.ported_out_at) if result.HasField("ported_out_at") else "",
    )


def answer_twice(result: ledger_pb2.CheckResult, values: Values) -> tuple[Any, ...]:
    """A result's output columns in the twice dialect: those of ``answer``, then ``held_now`` and
    ``twice_code``."""
    held = result.held_now
    return (*answer(result, values), values.flag[held], values.code(twice_code(STATUS[result.status], held)))


ANSWERS: dict[str, Callable[[ledger_pb2.CheckResult, Values], tuple[Any, ...]]] = {
    "camara": answer,
    "twice": answer_twice,
}


def _time(at: Timestamp) -> str:
    return _iso(at.seconds, at.nanos)


@lru_cache(maxsize=1 << 14)
def _iso(seconds: int, nanos: int) -> str:
    return Timestamp(seconds=seconds, nanos=nanos).ToDatetime(tzinfo=UTC).isoformat()


class Writer:
    """Writes answered rows as CSV or JSON lines, keeping the input's columns first."""

    def __init__(self, out: IO[str], fmt: str, header: list[str], dialect: str = "camara") -> None:
        self.out = out
        self.fmt = fmt
        self.fields = (*OUTPUT_FIELDS, *DIALECTS[dialect])  # the answer's columns
        self.answer = ANSWERS[dialect]
        self.values = JSON_VALUES if fmt == "jsonl" else CSV_VALUES
        self.header = header
        self.fieldnames: list[Any] | None = None
        self.plain = False  # a row as long as the header is written as its fields and the answer
        self.buffer = io.StringIO()
        self.csv = csv.writer(self.buffer)

    def write(self, rows: list[Row], results: Iterable[ledger_pb2.CheckResult]) -> list[tuple[Any, ...]]:
        """Write one batch's rows with their answers; returns the answers."""
        values, answer = self.values, self.answer
        answers = [answer(result, values) for result in results]
        if len(answers) != len(rows):
            raise RuntimeError(f"the server answered {len(answers)} of {len(rows)} queries")
        if self.fmt == "jsonl":
            self.out.write(
                "".join(
                    orjson.dumps({**fields, **dict(zip(self.fields, a, strict=True))}).decode() + "\n"
                    for (_, fields, _, _), a in zip(rows, answers, strict=True)
                )
            )
            return answers
        if self.fieldnames is None and rows:
            self._start(rows[0][1])
        if self.plain and all(type(row[1]) is list for row in rows):
            # Text with no comma, quote or line break inside a field is written as it is, as the csv module
            # would write it; the batch is checked at once, and a batch with any such field is written row
            # by row.
            lines = [",".join([*fields, *a]) for (_, fields, _, _), a in zip(rows, answers, strict=True)]
            flat = ",".join(lines)
            if flat.count(",") == len(self.fieldnames or ()) * len(lines) - 1 and not _NEEDS_QUOTES(flat):
                lines.append("")
                self.out.write("\r\n".join(lines))
                return answers
        for (_, fields, _, _), a in zip(rows, answers, strict=True):
            self.csv.writerow(self._cells(fields, a))
        self.out.write(self.buffer.getvalue())
        self.buffer.seek(0)
        self.buffer.truncate()
        return answers

    def _cells(self, fields: Any, answer: tuple[Any, ...]) -> list[Any]:
        # As csv.DictWriter wrote the input row merged with the answer.
        if self.plain and type(fields) is list:
            return [*fields, *answer]
        record = fields if type(fields) is dict else dict(zip(self.header, fields, strict=True))
        merged = {**record, **dict(zip(self.fields, answer, strict=True))}
        return [merged.get(name, "") for name in self.fieldnames or ()]

    def _start(self, first: Any) -> None:
        # The columns are the first row's (as csv.DictReader made it) and the answer's, as csv.DictWriter
        # wrote them; most files' rows are then their fields and the answer, no dict needed.
        record = first if type(first) is dict else dict(zip(self.header, first, strict=True))
        self.fieldnames = [*record, *self.fields]
        self.plain = self.fieldnames == [*self.header, *self.fields] and not set(self.header) & set(self.fields)
        self.csv.writerow(["" if name is None else name for name in self.fieldnames])
        self.out.write(self.buffer.getvalue())
        self.buffer.seek(0)
        self.buffer.truncate()
