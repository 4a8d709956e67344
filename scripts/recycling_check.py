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
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
import orjson
from tqdm import tqdm

from ledger.cli import EXIT_INTERRUPTED, UsageError, add_target_argument, one_line_errors, partial_name
from ledger.domain.identifiers import InvalidValue, parse_date, parse_msisdn
from ledger.v1 import ledger_pb2, recycling_service_pb2_grpc
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
NO_DATA_REASONS = {v.number: v.name.removeprefix("NO_DATA_REASON_") for v in ledger_pb2.NoDataReason.DESCRIPTOR.values}
STATUS = {v.number: v.name.removeprefix("CHECK_STATUS_") for v in ledger_pb2.CheckStatus.DESCRIPTOR.values}
CLEARANCE = {v.number: v.name.removeprefix("CLEARANCE_") for v in ledger_pb2.Clearance.DESCRIPTOR.values}


@dataclass
class Row:
    """One valid input row: where it came from, its original fields, and the query."""

    line: int
    fields: dict[str, Any]
    number: str
    since_date: str


def read_rows(
    stream: IO[str], fmt: str, errors: IO[str], bad: Counter[str], today: date | None = None
) -> Iterator[Row]:
    """Valid rows, in order; bad rows are reported to ``errors`` and counted in ``bad``.

    A CSV header without ``number`` and ``since_date`` is refused here, at once, by the caller's thread.
    """
    records: Iterator[tuple[int, Any]]
    if fmt == "csv":
        reader = csv.DictReader(stream)
        missing = {"number", "since_date"} - set(reader.fieldnames or [])
        if missing:
            raise UsageError(
                f"the CSV header {','.join(reader.fieldnames or []) or '(empty file)'!r} lacks "
                f"{', '.join(sorted(missing))}; the first line must name the columns, e.g. number,since_date"
            )
        records = ((reader.line_num, r) for r in reader)
    else:
        records = _json_lines(stream, errors, bad)
    return _valid(records, errors, bad, today)


def _valid(records: Iterator[tuple[int, Any]], errors: IO[str], bad: Counter[str], today: date | None) -> Iterator[Row]:
    for line, record in records:
        if not isinstance(record, dict):
            _bad(errors, bad, line, "row is not an object")
            continue
        try:
            number = parse_msisdn(str(record.get("number") or ""))
            day = parse_date(str(record.get("since_date") or ""))
        except InvalidValue as e:
            _bad(errors, bad, line, str(e))
            continue
        if today is not None and day > today:  # the ledger refuses the whole request (OUT_OF_RANGE)
            _bad(errors, bad, line, f"since_date {day.isoformat()} is after today ({today.isoformat()})")
            continue
        yield Row(line, record, number, day.isoformat())


def _json_lines(stream: IO[str], errors: IO[str], bad: Counter[str]) -> Iterator[tuple[int, Any]]:
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            yield line, orjson.loads(text)
        except orjson.JSONDecodeError as e:
            _bad(errors, bad, line, f"not JSON ({e})")


def _bad(errors: IO[str], bad: Counter[str], line: int, reason: str) -> None:
    bad["rows"] += 1
    print(f"line {line}: skipped: {reason}", file=errors)


def batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """Rows grouped for one BatchCheck request each."""
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def answer(result: ledger_pb2.CheckResult, dialect: str = "camara") -> dict[str, Any]:
    """A result's output columns (those of ``OUTPUT_FIELDS``, and the dialect's)."""
    last = ported = ""
    if result.HasField("last_disconnected_at"):
        last = result.last_disconnected_at.ToDatetime(tzinfo=UTC).isoformat()
    if result.HasField("ported_out_at"):
        ported = result.ported_out_at.ToDatetime(tzinfo=UTC).isoformat()
    reason = NO_DATA_REASONS[result.no_data_reason]
    status = STATUS[result.status]
    extra: dict[str, Any] = {}
    if dialect == "twice":
        extra = {"held_now": result.held_now, "twice_code": twice_code(status, result.held_now)}
    return {
        "status": status,
        "phone_number_changed": result.phone_number_changed,
        "clearance": CLEARANCE[result.clearance],
        "outstanding_holders": list(result.outstanding_holders),
        "last_disconnected_at": last,
        "no_data_reason": "" if reason == "UNSPECIFIED" else reason,
        "ported_out_at": ported,
        **extra,
    }


class Writer:
    """Writes answered rows as CSV or JSON lines, keeping the input's columns first."""

    def __init__(self, out: IO[str], fmt: str, dialect: str = "camara") -> None:
        self.out = out
        self.fmt = fmt
        self.fields = (*OUTPUT_FIELDS, *DIALECTS[dialect])
        self.csv: csv.DictWriter[str] | None = None

    def write(self, row: Row, result: dict[str, Any]) -> None:
        """Write one row with its answer."""
        merged = {**row.fields, **result}
        if self.fmt == "jsonl":
            self.out.write(orjson.dumps(merged).decode() + "\n")
            return
        if self.csv is None:
            self.csv = csv.DictWriter(self.out, fieldnames=[*row.fields, *self.fields], extrasaction="ignore")
            self.csv.writeheader()
        merged["outstanding_holders"] = ";".join(result["outstanding_holders"])
        for flag in ("phone_number_changed", "held_now"):
            if flag in result:
                merged[flag] = str(result[flag]).lower()
        self.csv.writerow(merged)


def count_rows(path: Path, fmt: str) -> int:
    """Data rows in a file (for the progress bar): non-empty lines, less the CSV header."""
    with path.open(encoding="utf-8", errors="replace") as f:
        lines = sum(1 for text in f if text.strip())
    return max(0, lines - 1) if fmt == "csv" else lines


class Requests:
    """The BatchCheck requests, read on gRPC's own thread; an error there ends the stream and is kept
    for the caller's thread to raise (raised on gRPC's thread, it would be lost and the call would hang)."""

    def __init__(self, rows: Iterator[Row], size: int) -> None:
        self.rows = rows
        self.size = size
        self.pending: list[list[Row]] = []
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[rpb.BatchCheckRequest]:
        try:
            for batch in batches(self.rows, self.size):
                self.pending.append(batch)
                yield rpb.BatchCheckRequest(
                    queries=[ledger_pb2.CheckQuery(number=r.number, since_date=r.since_date) for r in batch]
                )
        except GeneratorExit:
            raise
        except BaseException as e:
            self.error = e


@one_line_errors("recycling_check")
def main(argv: list[str] | None = None) -> int:
    """Run the checks; exit 0 when every valid row was answered, 1 when rows were skipped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="CSV (with header) or JSON-lines file; - for stdin")
    parser.add_argument("-o", "--output", type=Path, help="output file (default stdout)")
    parser.add_argument("--format", choices=("csv", "jsonl"), help="input and output format (default: by extension)")
    add_target_argument(parser)
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
    source: IO[str] = sys.stdin if from_stdin else args.input.open(newline="", encoding="utf-8")
    total = None if from_stdin else count_rows(args.input, fmt)
    bad: Counter[str] = Counter()
    try:
        requests = Requests(read_rows(source, fmt, sys.stderr, bad, today), args.batch_size)
    except (UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{args.input} cannot be read as {fmt.upper()} text: {e}") from None
    # The answers go to OUT.partial, renamed to OUT once every row is answered.
    partial = partial_name(args.output) if args.output is not None else None
    sink: IO[str] = (
        io.TextIOWrapper(sys.stdout.buffer, newline="")
        if partial is None
        else partial.open("w", newline="", encoding="utf-8")
    )
    statuses: Counter[str] = Counter()
    clearances: Counter[str] = Counter()
    writer = Writer(sink, fmt, args.dialect)
    channel = grpc.insecure_channel(args.target, options=[("grpc.max_receive_message_length", 64 << 20)])
    stub = recycling_service_pb2_grpc.RecyclingServiceStub(channel)
    started = time.perf_counter()
    checked = 0
    complete = False
    try:
        with tqdm(total=total, unit="rows", disable=args.no_progress, file=sys.stderr) as bar:
            for response in stub.BatchCheck(iter(requests)):
                batch = requests.pending.pop(0)
                for row, result in zip(batch, response.results, strict=True):
                    values = answer(result, args.dialect)
                    writer.write(row, values)
                    statuses[values["status"]] += 1
                    if values["clearance"] != "NOT_APPLICABLE":
                        clearances[values["clearance"]] += 1
                checked += len(batch)
                sink.flush()  # once per batch: what is answered is on disk if the job is stopped
                bar.update(len(batch))
        if isinstance(requests.error, UnicodeDecodeError | csv.Error):
            raise UsageError(f"{args.input} cannot be read as {fmt.upper()} text: {requests.error}")
        if requests.error is not None:
            raise requests.error
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
        if source is not sys.stdin:
            source.close()
        if complete and partial is not None and args.output is not None:
            partial.replace(args.output)
    elapsed = time.perf_counter() - started
    rate = checked / elapsed if elapsed > 0 else 0.0
    summary = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "none"
    print(f"checked {checked} numbers in {elapsed:.1f}s ({rate:,.0f}/s): {summary}", file=sys.stderr)
    if clearances:
        print(
            "clearance of changed numbers: " + ", ".join(f"{k} {v}" for k, v in sorted(clearances.items())),
            file=sys.stderr,
        )
    print(f"skipped {bad['rows']} malformed rows", file=sys.stderr)
    return 1 if bad["rows"] else 0


if __name__ == "__main__":
    sys.exit(main())
