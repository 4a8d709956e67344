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
from pathlib import Path
from zoneinfo import ZoneInfo

from ledger.cli import RunFailed, UsageError, one_line_errors, output_file
from ledger.connection import Connection, add_connection_arguments
from ledger.v1 import history_service_pb2_grpc, lifecycle_service_pb2_grpc
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts.disconnections.report import Stubs, draw, manifest, manifest_path, plan_for, render
from scripts.disconnections.verify import verify

PROG = "disconnection_report"
CALLING_CODE = re.compile(r"^\+[1-9][0-9]{0,3}$")


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
