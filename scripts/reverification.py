"""Run a real-name re-verification campaign: find the ACTIVE numbers whose holder's latest verification is
before a date or by a method no longer accepted, write what it found and did as CSV, and after the
deadline suspend those still due (reason UNVERIFIED_IDENTITY).

    python -m scripts.reverification --campaign spring-thunder-2026 --verified-before 2026-01-01 \\
        --methods ID_CARD_READER,PASSPORT_CHECK --deadline 2026-03-31 --suspend-overdue -o campaign.csv

Candidates come from the read models beside the store (``--db``). Before a number is suspended the job
reads its history from the server (``--target``): a holder who re-verified since is left alone, however
far behind the read models are. Each suspension's request id is derived from the campaign and the tenure,
so a re-run (after a crash, an interrupt, or twice by mistake) records nothing new and goes on where the
last one stopped. ``--dry-run`` records nothing and says what it would do.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import grpc
from tqdm import tqdm

from ledger.cli import (
    EXIT_INTERRUPTED,
    RunFailed,
    UsageError,
    add_db_argument,
    existing_store,
    one_line_errors,
    output_file,
)
from ledger.connection import Connection, add_connection_arguments
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import history_service_pb2_grpc, ledger_pb2, lifecycle_service_pb2_grpc
from ledger.v1 import lifecycle_service_pb2 as lpb
from projections.db import ViewsDatabase
from projections.people import PeopleQueries
from projections.queries import ReadModels
from projections.reverification import CAMPAIGN_NAME, OpenTenure, Rule, campaign_of, request_id

PROG = "reverification"
COLUMNS = ("number", "tenure_id", "subscriber_id", "channel", "agent_id", "verified_at", "method", "reason", "action")
METHODS = {v.name.removeprefix("VERIFICATION_METHOD_") for v in ledger_pb2.VerificationMethod.DESCRIPTOR.values}
METHODS.discard("UNSPECIFIED")


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date: give YYYY-MM-DD") from None


def rule_of(args: argparse.Namespace) -> Rule:
    """The campaign's rule from the options."""
    if args.verified_before is None and args.methods is None:
        raise UsageError("give --verified-before DATE, --methods LIST, or both: the rule that finds the holders")
    methods = None
    if args.methods is not None:
        methods = frozenset(m.strip().upper() for m in args.methods.split(",") if m.strip())
        unknown = sorted(methods - METHODS)
        if unknown or not methods:
            raise UsageError(f"--methods takes a comma-separated list of {', '.join(sorted(METHODS))}")
    before = _date(args.verified_before, "--verified-before") if args.verified_before is not None else None
    return Rule(before, methods)


def _at(value: int | None) -> str:
    return "" if value is None else datetime.fromtimestamp(value / 1_000_000, UTC).isoformat()


def latest_verification(history: Any, number: str, subscriber_id: str) -> tuple[int | None, str | None]:
    """The holder's latest verification as the ledger records it now (not as the read models do)."""
    found: tuple[int | None, str | None] = (None, None)
    request = hpb.GetNumberHistoryRequest(number=number)
    for response in history.GetNumberHistory(request, timeout=60):
        event = response.event
        if event.type == "SubscriberIdentityVerified" and event.subscriber_id.replace("-", "") == subscriber_id:
            at = event.occurred_at.ToDatetime(tzinfo=UTC)
            found = (int(at.timestamp() * 1_000_000), str(event.data["method"]))
    return found


class Campaign:
    """One run of a campaign: decides and (unless a dry run) does what each open tenure needs."""

    def __init__(self, args: argparse.Namespace, rule: Rule, channel: grpc.Channel, today: date) -> None:
        self.args = args
        self.rule = rule
        self.overdue = today > args.deadline
        self.history = history_service_pb2_grpc.HistoryServiceStub(channel)
        self.lifecycle = lifecycle_service_pb2_grpc.LifecycleServiceStub(channel)
        self.outcome: Counter[str] = Counter()

    def action(self, t: OpenTenure) -> tuple[str, str] | None:
        """(reason, action) for one open tenure, or None when the campaign has nothing to do with it."""
        if campaign_of(t.unverified_suspension) == self.args.campaign and t.suspended:
            return "", "suspended earlier"
        reason = self.rule.reason(t.verified_us, t.method)
        if not reason or t.suspended:
            return None  # not due, or not ACTIVE
        if not (self.overdue and self.args.suspend_overdue):
            return reason, "due"
        # The read models may lag: a holder re-verified since is left alone.
        verified_us, method = latest_verification(self.history, t.number, t.subscriber_id)
        if not self.rule.reason(verified_us, method):
            return reason, "re-verified (left alone)"
        if self.args.dry_run:
            return reason, "would suspend"
        return reason, self.suspend(t)

    def suspend(self, t: OpenTenure) -> str:
        request = lpb.SuspendNumberRequest(
            request_id=request_id(self.args.campaign, t.tenure_id),
            number=t.number,
            reason=ledger_pb2.SUSPENSION_REASON_UNVERIFIED_IDENTITY,
            note=f"re-verification campaign {self.args.campaign}: not re-verified by {self.args.deadline}",
        )
        try:
            self.lifecycle.SuspendNumber(request, metadata=(("x-ledger-actor", self.args.actor),), timeout=60)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                raise  # no server: one line says so, instead of one refusal per number
            return f"refused ({e.code().name})"
        return "suspended"


@one_line_errors(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run the campaign; returns 0 unless a suspension was refused."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", required=True, help="the campaign's name (letters, digits, '_', '.', '-')")
    parser.add_argument("--verified-before", metavar="DATE", help="due: latest verification before this day")
    parser.add_argument("--methods", metavar="LIST", help="due: latest verification by a method not in this list")
    parser.add_argument(
        "--deadline", required=True, type=lambda s: _date(s, "--deadline"), help="last day to re-verify"
    )
    parser.add_argument("--suspend-overdue", action="store_true", help="after the deadline, suspend those still due")
    parser.add_argument("--dry-run", action="store_true", help="record nothing; say what would be done")
    parser.add_argument("-o", "--output", type=Path, help="CSV of what was found and done (default: CAMPAIGN.csv)")
    parser.add_argument("--actor", default=PROG, help="actor recorded with each suspension")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_db_argument(parser)
    add_connection_arguments(parser)
    args = parser.parse_args(argv)
    if not CAMPAIGN_NAME.match(args.campaign):
        raise UsageError("--campaign takes 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
    rule = rule_of(args)
    views = ViewsDatabase.for_store(existing_store(args.db))
    if not views.exists():
        raise RunFailed(f"no read models at {views.sqlite_path}; is the server or `ledger project` running?")
    read_models = ReadModels(views)
    try:
        tenures = PeopleQueries(read_models).open_tenures()
    finally:
        read_models.close()
    out = args.output or Path(f"{args.campaign}.csv")
    channel = Connection.from_args(args).channel()
    campaign = Campaign(args, rule, channel, datetime.now(UTC).date())
    interrupted = False
    try:
        with output_file(out, newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(COLUMNS)
            try:
                for t in tqdm(tenures, unit="numbers", disable=args.no_progress, file=sys.stderr):
                    decided = campaign.action(t)
                    if decided is None:
                        continue
                    reason, action = decided
                    campaign.outcome[action] += 1
                    row = (t.number, t.tenure_id, t.subscriber_id, t.channel, t.agent_id, _at(t.verified_us))
                    writer.writerow((*row, t.method or "", reason, action))
                    f.flush()
            except KeyboardInterrupt:
                interrupted = True
                raise
    except KeyboardInterrupt:
        pass
    finally:
        channel.close()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(campaign.outcome.items())) or "nothing found"
    if interrupted:
        print(f"{PROG}: interrupted: {summary}; the same command again goes on", file=sys.stderr)
        return EXIT_INTERRUPTED
    note = ""
    if args.suspend_overdue and not campaign.overdue:
        note = f" (the deadline {args.deadline} has not passed: nothing suspended)"
    dry = " (dry run: nothing recorded)" if args.dry_run else ""
    print(f"{PROG}: campaign {args.campaign}: {summary}{note}{dry} -> {out}")
    return 1 if any(k.startswith("refused") for k in campaign.outcome) else 0


if __name__ == "__main__":
    sys.exit(main())
