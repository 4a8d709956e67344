"""``ledger status`` and ``ledger verify``: what an on-call engineer reads first, and whether the ledger verifies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ledger.console.refusals import EXIT_ANSWERED, EXIT_REFUSED
from ledger.console.session import CALL_SECONDS, Session
from ledger.console.text import clip, enum_name, pairs, table
from ledger.v1 import history_service_pb2 as hpb

# A read model this many events behind the head is worth a look.
LAG_WORTH_A_LOOK = 1000


def show_status(s: Session) -> int:
    """``ledger status``: what an on-call engineer reads first."""
    status = s.history.GetStatus(hpb.GetStatusRequest(), timeout=CALL_SECONDS)
    if s.args.json:
        s.json(status)
        return EXIT_ANSWERED
    times = s.times(status.time_zone or "UTC")
    policy = json.loads(status.policy or "{}")
    problems = []
    for v in status.views:
        state = enum_name(v, "state").lower()
        if state != "serving":
            problems.append(f"read model {v.name} is {state} (at {v.position} of {status.head_position})")
        elif v.lag > LAG_WORTH_A_LOOK:
            problems.append(f"read model {v.name} is {v.lag} events behind (is its projector running?)")
    uncovered = status.head_position - status.signed_head_size
    interval = int(policy.get("signed_head_interval_seconds", 0) or 0)
    signed_at = times.moment(status.signed_head_at)
    now = times.moment(status.now) or datetime.now(UTC)
    since = signed_at or times.moment(status.started_at) or now
    if interval and uncovered > 0 and now - since > timedelta(seconds=2 * interval + 60):
        problems.append(f"{uncovered} events are covered by no signed head (one is signed every {interval} s)")
    if problems:
        s.print("ATTENTION:", *(f"  - {clip(p, 96)}" for p in problems), "")
    else:
        s.print("OK: every read model serving", "")
    started = times.moment(status.started_at)
    up = f", up {_duration(now - started)}" if started is not None else ""
    items = [
        ("head", f"position {status.head_position}, digest {status.head_digest[:16] or '-'}"),
        (
            "signed head",
            f"size {status.signed_head_size} ({uncovered} events since), signed {times.long(status.signed_head_at)}"
            if status.signed_head_size
            else "none signed yet",
        ),
        ("store", status.store),
        ("server", f"version {status.version}, started {times.long(status.started_at)}{up}"),
        (
            "policy",
            f"time zone {status.time_zone}, quarantine {policy.get('quarantine_days', '?')} days, "
            f"at most {policy.get('max_numbers_per_identity', '?')} numbers per identity",
        ),
    ]
    s.print(*pairs(items), "")
    rows = [
        [
            v.name,
            enum_name(v, "state").lower(),
            str(v.position),
            str(v.lag),
            str(v.rebuild_position) if v.rebuild_position else "-",
        ]
        for v in status.views
    ]
    s.print(*table(["READ MODEL", "STATE", "POSITION", "LAG", "REBUILD AT"], rows, [12, 11, 12, 12, 12]))
    return EXIT_ANSWERED


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m {seconds}s"


def show_verify(s: Session) -> int:
    """``ledger verify [--number NUMBER]``: exit 1 when the ledger does not verify."""
    args = s.args
    response = s.history.VerifyIntegrity(
        # A whole ledger takes as long as it takes (Ctrl-C stops the wait).
        hpb.VerifyIntegrityRequest(number=args.number or ""),
        timeout=None,
    )
    if args.json:
        s.json(response)
        return EXIT_ANSWERED if response.ok else EXIT_REFUSED
    scope = f"the chains of {args.number} and its holders" if args.number else "the whole ledger"
    against = f"the signed head of size {response.signed_head_size}" if response.signed_head_size else "no signed head"
    if response.ok:
        s.print(f"ok: {scope} verifies")
        s.print(
            *pairs(
                [
                    ("events checked", str(response.events_checked)),
                    ("head", f"position {response.head_position}, digest {response.head_digest}"),
                    ("checked against", against),
                ]
            )
        )
        return EXIT_ANSWERED
    s.print(f"NOT OK: {scope} does not verify")
    items = [
        ("first bad position", str(response.first_bad_position)),
        ("problem", response.problem or "-"),
        ("stream", response.stream or "-"),
        ("events checked", str(response.events_checked)),
        ("checked against", against),
    ]
    s.print(*pairs(items))
    s.print(
        "what to do: keep the store as it is (no repair, no restore over it), compare it with a backup and the "
        "published heads, and raise an incident (docs/operations.md)"
    )
    return EXIT_REFUSED
