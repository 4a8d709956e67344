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
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from tqdm import tqdm

from ledger.cli import EXIT_INTERRUPTED, UsageError, one_line_errors, partial_name
from ledger.connection import Connection, add_connection_arguments
from ledger.v1 import recycling_service_pb2 as rpb
from scripts.recycling.columns import DIALECTS, Writer
from scripts.recycling.rows import Batch, Row, Source, count_rows, full_check

# The method called with requests already encoded (see Batch.request).
_SERVICE = rpb.DESCRIPTOR.services_by_name["RecyclingService"]
BATCH_CHECK = f"/{_SERVICE.full_name}/{_SERVICE.methods_by_name['BatchCheck'].name}"
# After this many refused requests, every row is checked in full before it is sent (a file full of such
# numbers would otherwise cost a new stream per batch).
REFUSALS_BEFORE_FULL_CHECKS = 3


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
