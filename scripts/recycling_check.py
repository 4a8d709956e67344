"""Check many numbers for recycling over BatchCheck: CSV or JSON lines in, the same rows with answers out.

Input rows have ``number`` and ``since_date`` (YYYY-MM-DD); CSV needs a header row. Malformed rows are
reported on stderr with their line number and skipped. Output keeps the input order and adds
``status``, ``phone_number_changed``, ``clearance``, ``outstanding_holders``, ``last_disconnected_at``,
``no_data_reason`` and ``ported_out_at``. Rows dated after today in ``--timezone`` are skipped (the ledger
refuses them). ``--dialect twice`` adds ``held_now`` and ``twice_code``, the answer in the recycled-number
dialect of Chinese platforms: 0 cannot tell (NO_DATA), 1 recycled (CHANGED and held now), 2 not recycled
(NOT_CHANGED), 3 cancelled (CHANGED and nobody holds the number now).

    python -m scripts.recycling_check numbers.csv -o answers.csv --target 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
import orjson
from google.protobuf.timestamp_pb2 import Timestamp
from tqdm import tqdm

from ledger.cli import EXIT_INTERRUPTED, UsageError, one_line_errors, partial_name
from ledger.connection import Connection, add_connection_arguments
from ledger.domain.identifiers import InvalidValue, parse_date, parse_msisdn
from ledger.v1 import ledger_pb2
from ledger.v1 import recycling_service_pb2 as rpb
from projections.recycling import twice_code

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

# The method called with requests already encoded (see Batch.request).
_SERVICE = rpb.DESCRIPTOR.services_by_name["RecyclingService"]
BATCH_CHECK = f"/{_SERVICE.full_name}/{_SERVICE.methods_by_name['BatchCheck'].name}"
# A CSV field the csv module would quote (the delimiter is counted apart).
_NEEDS_QUOTES = re.compile('["\r\n]').search
# What a row must look like to be sent as it is; anything else is checked in full here first. The server
# checks every number and date in full again, and a request it refuses is checked here row by row (see Feed).
NUMBER_SHAPE = re.compile(r"\+[1-9][0-9]{4,14}")
DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Dates of that shape seen (and not after today) are kept, so a date is matched once, not on every row;
# a file of more distinct dates than this checks the others on every row.
MAX_DATES_KEPT = 10_000
# After this many refused requests, every row is checked in full before it is sent (a file full of such
# numbers would otherwise cost a new stream per batch).
REFUSALS_BEFORE_FULL_CHECKS = 3

# A row to check: its line, its fields (a list as long as the CSV header, else a dict as csv.DictReader
# makes it, or a JSON object), and the number and date sent.
Row = tuple[int, Any, str, str]


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


class Feed:
    """The requests of the job's streams, made on gRPC's own thread.

    A request the server refuses ends its stream: its rows are then checked in full here, those refused
    are skipped, and the rest, with every batch sent after it, go again on a new stream, so one bad
    number never fails the other rows of its batch. An error reading the input ends the stream and is
    kept for the caller's thread to raise (raised on gRPC's thread, it would be lost and the call would
    hang)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.batches = iter(source)
        self.lock = threading.Lock()
        self.reading = threading.Lock()
        self.done = False  # the input is read to its end (or failed)
        self.sent: deque[Batch] = deque()  # sent on the current stream, not yet answered
        self.again: deque[Batch] = deque()  # to send on the next stream before reading on
        self.stream = 0
        self.refusals = 0
        self.last: Batch | None = None  # skipped rows after the last batch sent
        self.error: BaseException | None = None

    def requests(self) -> Iterator[bytes]:
        """One stream's requests: those to send again first, then the input's next batches.

        The input is read outside ``lock`` (a read may wait on stdin while answers are written), under
        ``reading``, and what is read joins the end of ``again`` there, so a stream refused while it was
        reading leaves its batch to its successor in the input's order."""
        with self.lock:
            stream = self.stream
        while True:
            with self.lock:
                if self.stream != stream:  # the stream was refused: its successor sends the rest
                    return
                batch = self.again.popleft() if self.again else None
                if batch is not None:
                    self.sent.append(batch)
                    request = batch.request()
            if batch is not None:
                yield request
                continue
            with self.reading:
                if self.done:
                    with self.lock:
                        if not self.again:
                            return
                    continue
                read = self._read()
                if read is not None:
                    with self.lock:
                        self.again.append(read)

    def _read(self) -> Batch | None:
        try:
            batch = next(self.batches, None)
        except BaseException as e:
            self.error = e
            batch = None
        if batch is not None and not batch.rows:  # skipped rows after the last batch
            self.last, batch = batch, None
        self.done = batch is None
        return batch

    def answered(self) -> Batch:
        """The batch a response answers (responses come in the order of the requests)."""
        with self.lock:
            return self.sent.popleft()

    def refused(self) -> Batch | None:
        """After a refused stream: the first unanswered batch, its rows the full check refuses moved to its
        skipped rows, queued with those sent after it for the next stream (unless no row is left). None
        when the full check refuses none of its rows: the refusal was not about them."""
        with self.lock:
            self.stream += 1
            if not self.sent:
                return None
            first = self.sent[0]
            rows: list[Row] = []
            skipped = list(first.skipped)
            for line, fields, number, since in first.rows:
                checked = full_check(number, since, self.source.today)
                if isinstance(checked, str):
                    skipped.append((line, checked))
                else:
                    rows.append((line, fields, *checked))
            if len(rows) == len(first.rows):
                return None
            self.sent.popleft()
            fixed = Batch(rows, sorted(skipped))
            self.again = deque([*([fixed] if rows else []), *self.sent, *self.again])
            self.sent.clear()
            self.refusals += 1
            if self.refusals >= REFUSALS_BEFORE_FULL_CHECKS:
                self.source.full_checks = True
            return fixed


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


def count_rows(path: Path, fmt: str) -> int:
    """Data rows in a file (for the progress bar): lines with more than white space, less the CSV header."""
    with path.open("rb") as f:  # counted as bytes, without decoding, each line's test in C
        lines = Counter(map(bytes.isspace, f))[False]
    return max(0, lines - 1) if fmt == "csv" else lines


class Report:
    """Skipped rows on stderr, in the input's order, and the counts for the summary."""

    def __init__(self, errors: IO[str]) -> None:
        self.errors = errors
        self.skipped = 0
        self.statuses: Counter[str] = Counter()
        self.clearances: Counter[str] = Counter()

    def skip(self, rows: list[tuple[int, str]]) -> None:
        """Report skipped rows."""
        if rows:
            self.skipped += len(rows)
            self.errors.write("".join(f"line {line}: skipped: {reason}\n" for line, reason in rows))

    def count(self, answers: list[tuple[Any, ...]]) -> None:
        """Count a batch's answers by status and clearance."""
        self.statuses.update([a[0] for a in answers])
        self.clearances.update([a[2] for a in answers])


@one_line_errors("recycling_check")
def main(argv: list[str] | None = None) -> int:
    """Run the checks; exit 0 when every valid row was answered, 1 when rows were skipped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="CSV (with header) or JSON-lines file; - for stdin")
    parser.add_argument("-o", "--output", type=Path, help="output file (default stdout)")
    parser.add_argument("--format", choices=("csv", "jsonl"), help="input and output format (default: by extension)")
    add_connection_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=1000, help="queries per BatchCheck request (default 1000)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--dialect",
        choices=tuple(DIALECTS),
        default="camara",
        help="camara (default): the CheckResult's columns; twice: also held_now and twice_code (0 cannot tell, "
        "1 recycled, 2 not recycled, 3 cancelled)",
    )
    parser.add_argument(
        "--timezone",
        default="UTC",
        help="the ledger's business time zone (policy timezone, default UTC): rows dated after today there are "
        "skipped, as the ledger refuses them",
    )
    args = parser.parse_args(argv)
    try:
        today = datetime.now(ZoneInfo(args.timezone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {args.timezone!r}") from None
    fmt = args.format or ("jsonl" if args.input.suffix in (".jsonl", ".ndjson", ".json") else "csv")
    from_stdin = str(args.input) == "-"
    stream: IO[str] = sys.stdin if from_stdin else args.input.open(newline="", encoding="utf-8")
    total = None if from_stdin else count_rows(args.input, fmt)
    try:
        source = Source(stream, fmt, today, args.batch_size)
    except (UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{args.input} cannot be read as {fmt.upper()} text: {e}") from None
    feed = Feed(source)
    report = Report(sys.stderr)
    # The answers go to OUT.partial, renamed to OUT once every row is answered.
    partial = partial_name(args.output) if args.output is not None else None
    sink: IO[str] = (
        io.TextIOWrapper(sys.stdout.buffer, newline="")
        if partial is None
        else partial.open("w", newline="", encoding="utf-8")
    )
    writer = Writer(sink, fmt, source.header, args.dialect)
    channel = Connection.from_args(args).channel([("grpc.max_receive_message_length", 64 << 20)])
    # BatchCheck with requests sent as the bytes Batch.request makes.
    batch_check = channel.stream_stream(
        BATCH_CHECK, request_serializer=None, response_deserializer=rpb.BatchCheckResponse.FromString
    )
    started = time.perf_counter()
    checked = 0
    complete = False
    try:
        with tqdm(total=total, unit="rows", disable=args.no_progress, file=sys.stderr) as bar:
            while True:
                try:
                    for response in batch_check(feed.requests()):
                        batch = feed.answered()
                        report.skip(batch.skipped)
                        report.count(writer.write(batch.rows, response.results))
                        checked += len(batch.rows)
                        sink.flush()  # once per batch: what is answered is on disk if the job is stopped
                        bar.update(len(batch.rows))
                    break
                except grpc.RpcError as e:
                    if e.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE):
                        raise
                    fixed = feed.refused()
                    if fixed is None:
                        raise
                    if not fixed.rows:
                        report.skip(fixed.skipped)
        if feed.error is not None:
            report.skip(source.skipped)  # the rows read before it
        if isinstance(feed.error, UnicodeDecodeError | csv.Error):
            raise UsageError(f"{args.input} cannot be read as {fmt.upper()} text: {feed.error}")
        if feed.error is not None:
            raise feed.error
        report.skip(feed.last.skipped if feed.last is not None else [])
        complete = True
    except KeyboardInterrupt:
        where = f"; the rows answered so far are in {partial}" if partial else ""
        of = f" of {total}" if total is not None else ""
        print(f"recycling_check: interrupted after {checked}{of} rows{where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        channel.close()
        sink.flush()
        if sink is not sys.stdout:
            sink.close()
        if stream is not sys.stdin:
            stream.close()
        if complete and partial is not None and args.output is not None:
            partial.replace(args.output)
    elapsed = time.perf_counter() - started
    rate = checked / elapsed if elapsed > 0 else 0.0
    summary = ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items())) or "none"
    print(f"checked {checked} numbers in {elapsed:.1f}s ({rate:,.0f}/s): {summary}", file=sys.stderr)
    clearances = {k: v for k, v in report.clearances.items() if k != "NOT_APPLICABLE"}
    if clearances:
        print(
            "clearance of changed numbers: " + ", ".join(f"{k} {v}" for k, v in sorted(clearances.items())),
            file=sys.stderr,
        )
    print(f"skipped {report.skipped} malformed rows", file=sys.stderr)
    return 1 if report.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
