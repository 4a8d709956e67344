"""Draw a jurisdiction's monthly report of permanent disconnections (the FCC's Reassigned Numbers Database
report for +1), record it in the ledger, and verify a report against the ledger.

    python -m scripts.disconnection_report --jurisdiction +1 --month 2026-11 -o rnd-2026-11.csv
    python -m scripts.disconnection_report --verify rnd-2026-11.csv

One row per number: its E.164 form and the date (policy time zone) of its most recent permanent
disconnection among those the report covers. A report covers the permanent disconnections recorded after
the jurisdiction's previous report (by ledger position, up to the signed head it is drawn from) that
occurred before the end of its month (the current month: before the head was signed); one recorded
before the previous report but occurring after that report's period is carried into this one. So a
back-dated disconnection goes in the next file, none is reported twice, and redrawing a month (its record
is in the ledger) gives the same bytes. Port-outs, returns and suspensions are not permanent
disconnections; numbers ported in are reported like any other.

Beside the file, ``FILE.manifest.json``: the counts, the period, the position range, the file's SHA-256
and the signed head it was drawn from. ``--verify FILE`` checks the file and its manifest against the
ledger: the recorded report, the signed head, the file redrawn, and each row's disconnection event by its
inclusion proof in the signed head (exit 0 when they agree, 1 when not).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ledger.adapters.log import stored_transcoder
from ledger.cli import RunFailed, UsageError, one_line_errors, output_file
from ledger.connection import Connection, add_connection_arguments
from ledger.proofs.heads import SignedHead, load_public_key, verify_head
from ledger.proofs.merkle import event_leaf_hash, verify_inclusion
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import history_service_pb2_grpc, ledger_pb2, lifecycle_service_pb2_grpc
from ledger.v1 import lifecycle_service_pb2 as lpb

PROG = "disconnection_report"
CALLING_CODE = re.compile(r"^\+[1-9][0-9]{0,3}$")
HEADER = "number,disconnection_date\n"
FORMAT = "disconnection-report/1"
PAGE = 100_000
_PORTED_OUT = ledger_pb2.DISCONNECT_REASON_PORTED_OUT


@dataclass(frozen=True)
class Plan:
    """What a report covers: its positions and period, and where the previous report ended."""

    jurisdiction: str
    month: str
    from_position: int
    to_position: int
    period_end: datetime
    previous_to: int  # 0 for the jurisdiction's first report
    previous_end: datetime | None


@dataclass
class Drawn:
    """A report drawn: its rows (number -> the disconnection reported) and what was left out."""

    rows: dict[str, hpb.Disconnection] = field(default_factory=dict)
    included: int = 0
    carried: int = 0
    carry_from: int = 0


@dataclass(frozen=True)
class Stubs:
    """The two services the job calls."""

    history: history_service_pb2_grpc.HistoryServiceStub
    lifecycle: lifecycle_service_pb2_grpc.LifecycleServiceStub


def month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first moment and the next month's, in the time zone."""
    try:
        year, mon = (int(part) for part in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=tz)
    except ValueError:
        raise UsageError(f"--month {month!r} is not a month: give YYYY-MM, such as 2026-11") from None
    following = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    return start, following


def disconnections(stubs: Stubs, jurisdiction: str, start: int, end: int) -> Iterator[hpb.Disconnection]:
    """The permanent disconnections recorded from position ``start`` to ``end``, a page at a time."""
    while start <= end:
        page = stubs.history.ListDisconnections(
            hpb.ListDisconnectionsRequest(jurisdiction=jurisdiction, from_position=start, to_position=end),
            timeout=300,
        )
        yield from page.disconnections
        start = page.read_to + 1


def draw(stubs: Stubs, plan: Plan) -> Drawn:
    """The rows of the report the plan describes: a function of the plan and the ledger alone."""
    drawn = Drawn()
    for d in disconnections(stubs, plan.jurisdiction, plan.from_position, plan.to_position):
        at = d.occurred_at.ToDatetime(tzinfo=UTC)
        if at >= plan.period_end:  # occurred after the period: the next report's
            drawn.carried += 1
            drawn.carry_from = drawn.carry_from or d.position
            continue
        if d.position <= plan.previous_to and plan.previous_end is not None and at < plan.previous_end:
            continue  # read again only because the scan starts at an earlier carried one: reported already
        drawn.included += 1
        held = drawn.rows.get(d.number)
        if held is None or (at, d.position) > (held.occurred_at.ToDatetime(tzinfo=UTC), held.position):
            drawn.rows[d.number] = d
    return drawn


def render(drawn: Drawn, tz: ZoneInfo) -> bytes:
    """The CSV file: a header, then one row per number in number order."""
    lines = [HEADER]
    for number in sorted(drawn.rows):
        when = drawn.rows[number].occurred_at.ToDatetime(tzinfo=UTC).astimezone(tz).date()
        lines.append(f"{number},{when.isoformat()}\n")
    return "".join(lines).encode()


def plan_for(stubs: Stubs, jurisdiction: str, month: str) -> tuple[Plan, hpb.DisconnectionReport | None, Any, str]:
    """The plan of the month's report (from its record when it was issued), its record, the signed head it is
    drawn from, and the policy's time zone."""
    listed = stubs.history.ListDisconnectionReports(
        hpb.ListDisconnectionReportsRequest(jurisdiction=jurisdiction), timeout=60
    )
    tz = ZoneInfo(listed.timezone)
    reports = list(listed.reports)
    start, following = month_bounds(month, tz)
    for i, report in enumerate(reports):
        if report.month == month:
            previous = reports[i - 1] if i else None
            head = stubs.history.GetSignedHead(hpb.GetSignedHeadRequest(size=report.to_position), timeout=60)
            plan = Plan(
                jurisdiction,
                month,
                report.from_position,
                report.to_position,
                report.period_end.ToDatetime(tzinfo=UTC),
                previous.to_position if previous else 0,
                previous.period_end.ToDatetime(tzinfo=UTC) if previous else None,
            )
            return plan, report, head.signed_head, listed.timezone
    last = reports[-1] if reports else None
    if last is not None and month < last.month:
        raise RunFailed(
            f"{month} is before the last report of {jurisdiction} ({last.month}) and was never issued: "
            "reports are issued in month order, and the later ones include what it would have held"
        )
    head = stubs.history.GetSignedHead(hpb.GetSignedHeadRequest(fresh=True), timeout=60).signed_head
    now = head.signed_at.ToDatetime(tzinfo=UTC)
    if start > now:
        raise UsageError(f"--month {month} has not begun (the ledger's time is {now.astimezone(tz):%Y-%m-%d %H:%M})")
    if last is None:
        from_position, previous_to, previous_end = 1, 0, None
    else:
        previous_to = last.to_position
        from_position = min(previous_to + 1, last.carry_from or previous_to + 1)
        previous_end = last.period_end.ToDatetime(tzinfo=UTC)
    period_end = min(following.astimezone(UTC), now)
    plan = Plan(jurisdiction, month, from_position, head.size, period_end, previous_to, previous_end)
    return plan, None, head, listed.timezone


def manifest(plan: Plan, drawn: Drawn, body: bytes, head: Any, tz_name: str, name: str) -> dict[str, Any]:
    """The manifest written beside the file."""
    tz = ZoneInfo(tz_name)
    start, _ = month_bounds(plan.month, tz)
    back_dated = sum(1 for d in drawn.rows.values() if d.occurred_at.ToDatetime(tzinfo=UTC) < start)
    return {
        "format": FORMAT,
        "jurisdiction": plan.jurisdiction,
        "month": plan.month,
        "timezone": tz_name,
        "file": name,
        "sha256": hashlib.sha256(body).hexdigest(),
        "period": {"start": start.isoformat(), "end": plan.period_end.astimezone(tz).isoformat()},
        "positions": {
            "from": plan.from_position,
            "to": plan.to_position,
            "previous_to": plan.previous_to,
            "carry_from": drawn.carry_from,
        },
        "counts": {
            "rows": len(drawn.rows),
            "disconnections": drawn.included,
            "superseded": drawn.included - len(drawn.rows),
            "dated_before_month": back_dated,
            "carried_to_next": drawn.carried,
        },
        "signed_head": _head(head).to_json(),
    }


def _head(message: Any) -> SignedHead:
    return SignedHead(
        message.size,
        message.root_hash,
        message.map_root,
        message.signed_at.ToDatetime(tzinfo=UTC),
        message.key_id,
        message.signature,
    )


def issue(stubs: Stubs, args: argparse.Namespace) -> int:
    """Draw the month's report (or redraw an issued one), record it, and write the file and its manifest."""
    plan, record, head, tz_name = plan_for(stubs, args.jurisdiction, args.month)
    drawn = draw(stubs, plan)
    body = render(drawn, ZoneInfo(tz_name))
    digest = hashlib.sha256(body).hexdigest()
    out = Path(args.output or f"disconnections-{args.jurisdiction.lstrip('+')}-{args.month}.csv")
    if record is not None and record.digest != digest:
        raise RunFailed(
            f"the ledger records the {args.month} report with SHA-256 {record.digest}, but it redraws as {digest}: "
            "the ledger's history changed under it (run ledger verify)"
        )
    with output_file(out, newline="") as f:
        f.write(body.decode())
        if record is None:
            request = lpb.RecordDisconnectionReportRequest(
                request_id=f"disconnection-report:{plan.jurisdiction}:{plan.month}",
                jurisdiction=plan.jurisdiction,
                month=plan.month,
                from_position=plan.from_position,
                to_position=plan.to_position,
                carry_from=drawn.carry_from,
                rows=len(drawn.rows),
                digest=digest,
            )
            request.period_end.FromDatetime(plan.period_end)
            stubs.lifecycle.RecordDisconnectionReport(request, metadata=(("x-ledger-actor", args.actor),), timeout=60)
    document = manifest(plan, drawn, body, head, tz_name, out.name)
    with output_file(manifest_path(out)) as f:
        f.write(json.dumps(document, indent=2) + "\n")
    counts = document["counts"]
    verb = "redrew" if record is not None else "issued"
    print(
        f"{PROG}: {verb} {plan.jurisdiction} {plan.month}: {counts['rows']} rows, positions "
        f"{plan.from_position}-{plan.to_position}, {counts['carried_to_next']} carried to the next report -> {out}"
    )
    return 0


def manifest_path(path: Path) -> Path:
    """Where a report's manifest is: ``FILE.manifest.json``."""
    return path.with_name(path.name + ".manifest.json")


def verify(stubs: Stubs, path: Path, public_key: Path | None) -> list[str]:
    """What does not agree between the file, its manifest and the ledger (empty when all agree)."""
    try:
        body = path.read_bytes()
        document = json.loads(manifest_path(path).read_text())
        jurisdiction, month = str(document["jurisdiction"]), str(document["month"])
        given = SignedHead.from_json(document["signed_head"])
    except FileNotFoundError as e:
        raise RunFailed(f"{e.filename}: no such file (a report and its .manifest.json are needed)") from None
    except (ValueError, KeyError, TypeError) as e:
        return [f"the manifest is not a disconnection report manifest ({e})"]
    problems = []
    digest = hashlib.sha256(body).hexdigest()
    if digest != document.get("sha256"):
        problems.append(f"the file's SHA-256 {digest} is not the manifest's {document.get('sha256')}")
    plan, record, head, tz_name = plan_for(stubs, jurisdiction, month)
    if record is None:
        return [*problems, f"the ledger records no {jurisdiction} report for {month}"]
    if record.digest != digest:
        problems.append(f"the ledger records the {month} report with SHA-256 {record.digest}, not the file's {digest}")
    positions = document.get("positions", {})
    if (positions.get("from"), positions.get("to")) != (plan.from_position, plan.to_position):
        problems.append(f"the manifest's positions are not the recorded {plan.from_position}-{plan.to_position}")
    if (head.size, head.root_hash) != (given.size, given.root_hash):
        problems.append(f"the manifest's signed head is not the ledger's head at size {head.size}")
    if public_key is not None:
        problem = verify_head(given, load_public_key(public_key.read_bytes()))
        if problem:
            problems.append(f"the manifest's signed head: {problem}")
    drawn = draw(stubs, plan)
    if render(drawn, ZoneInfo(tz_name)) != body:
        problems.append("the file is not the report the ledger redraws for this month (rows added, changed or missing)")
    problems += _proven(stubs, body, drawn, head, ZoneInfo(tz_name))
    return problems


def _proven(stubs: Stubs, body: bytes, drawn: Drawn, head: Any, tz: ZoneInfo) -> list[str]:
    """Each row of the file against the inclusion proof of the disconnection it reports."""
    problems = []
    codec = stored_transcoder()
    lines = body.decode(errors="replace").splitlines()
    for n, line in enumerate(lines[1:], start=2):
        number, _, day = line.partition(",")
        reported = drawn.rows.get(number)
        if reported is None:
            problems.append(f"line {n}: {number} has no permanent disconnection in the report's range")
            continue
        proof = _proof_of(stubs, number, reported.position, head.size)
        if proof is None:
            problems.append(f"line {n}: no inclusion proof for position {reported.position}")
            continue
        event, inclusion = proof
        leaf = event_leaf_hash(
            event.position, event.stream_id, event.stream_version, inclusion.topic, bytes(inclusion.state)
        )
        if not verify_inclusion(leaf, event.position - 1, head.size, list(inclusion.hashes), head.root_hash):
            problems.append(f"line {n}: position {event.position} is not included in the signed head")
            continue
        state = codec.decode(bytes(inclusion.state))
        occurred = state["occurred_at"]
        if not inclusion.topic.endswith("Number.Disconnected") or occurred.astimezone(tz).date() != _date(day):
            problems.append(f"line {n}: the proven event at position {event.position} is not a disconnection on {day}")
    return problems


def _proof_of(stubs: Stubs, number: str, position: int, size: int) -> tuple[Any, Any] | None:
    request = hpb.GetNumberHistoryRequest(number=number, with_proofs=True, head_size=size)
    for response in stubs.history.GetNumberHistory(request, timeout=120):
        if response.event.position == position and response.HasField("inclusion_proof"):
            return response.event, response.inclusion_proof
    return None


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--jurisdiction", help='country calling code, such as "+1"')
    parser.add_argument("--month", help="reporting month, YYYY-MM")
    parser.add_argument("-o", "--output", help="the report's file (default: disconnections-<code>-<month>.csv)")
    parser.add_argument(
        "--verify", metavar="FILE", type=Path, help="check FILE and FILE.manifest.json against the ledger"
    )
    parser.add_argument(
        "--public-key", type=Path, help="with --verify: the ledger's public key (ledger head --public-key)"
    )
    parser.add_argument("--actor", default=PROG, help="actor recorded with the report's record")
    add_connection_arguments(parser)
    return parser


@one_line_errors(PROG)
def main(argv: list[str] | None = None) -> int:
    """Draw and record a report, or verify one; returns 0 when done (or, verifying, when all agree)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verify is None and (not args.jurisdiction or not args.month):
        raise UsageError("give --jurisdiction and --month to draw a report, or --verify FILE")
    if args.verify is not None and (args.jurisdiction or args.month or args.output):
        raise UsageError("--verify FILE takes the jurisdiction and month from FILE's manifest")
    if args.jurisdiction and not CALLING_CODE.match(args.jurisdiction):
        raise UsageError(f'--jurisdiction {args.jurisdiction!r} is not a country calling code such as "+1"')
    channel = Connection.from_args(args).channel(options=[("grpc.max_receive_message_length", 64 << 20)])
    stubs = Stubs(
        history_service_pb2_grpc.HistoryServiceStub(channel), lifecycle_service_pb2_grpc.LifecycleServiceStub(channel)
    )
    try:
        if args.verify is None:
            return issue(stubs, args)
        problems = verify(stubs, args.verify, args.public_key)
    finally:
        channel.close()
    for problem in problems[:20]:
        print(f"{PROG}: {args.verify}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{PROG}: {args.verify}: agrees with the ledger (every row proven in the signed head)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
