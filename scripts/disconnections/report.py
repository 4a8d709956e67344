"""A disconnection report drawn from the ledger: what it covers (``Plan``, after the jurisdiction's previous
report), its rows (``draw``), its bytes (``render``) and its manifest. Drawing is a function of the plan and
the ledger alone, so redrawing an issued month gives the same bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ledger.cli import RunFailed, UsageError
from ledger.proofs.heads import SignedHead
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import history_service_pb2_grpc, ledger_pb2, lifecycle_service_pb2_grpc

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


def manifest_path(path: Path) -> Path:
    """Where a report's manifest is: ``FILE.manifest.json``."""
    return path.with_name(path.name + ".manifest.json")
