"""``ledger history`` and ``ledger trace``: a number's events, and one request's, in words a person reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from google.protobuf import json_format

from ledger.console.refusals import EXIT_ANSWERED
from ledger.console.session import CALL_SECONDS, Session
from ledger.console.text import Times, clip, enum_name, pairs, plain, plural, short_id, table
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2 as lpb


def _moment(value: date | datetime, times: Times) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=times.zone)
    return datetime.combine(value + timedelta(days=1), time(), tzinfo=times.zone) - timedelta(microseconds=1)


# What each event means to a person reading a number's history, and the event's detail in words.
MARKS = {
    "NumberProvisioned": "PROVISIONED",
    "NumberActivated": "TENURE START",
    "NumberSimSwapped": "SIM SWAP",
    "NumberSuspended": "SUSPENDED",
    "NumberResumed": "RESUMED",
    "NumberDisconnected": "DISCONNECTED",
    "NumberDataClearanceConfirmed": "CLEARANCE",
    "NumberReleased": "RELEASED",
    "NumberPortedOut": "PORTED OUT",
    "NumberPortedIn": "PORTED IN",
    "NumberReturned": "RETURNED",
    "SubscriberRegistered": "REGISTERED",
    "SubscriberIdentityVerified": "VERIFIED",
    "SubscriberErasureRequested": "ERASURE ASKED",
    "SubscriberPersonalDataErased": "ERASED",
    "AccessLogOpened": "ACCESS LOG",
    "AccessLogPersonalDataRead": "DATA READ",
}
TENURE_ENDS = {"NumberDisconnected": "disconnected", "NumberPortedOut": "ported out"}


def detail(event: lpb.LedgerEvent) -> str:
    """The event's own fields that matter to a reader, in a few words."""
    d = json_format.MessageToDict(event.data)
    kind = event.type

    def day(key: str) -> str:
        return str(d.get(key, ""))[:10]

    if kind in ("NumberProvisioned", "AccessLogOpened"):
        return ""
    if kind == "NumberActivated":
        return f"{d.get('channel', '')} {d.get('agent_id', '')}, SIM …{str(d.get('iccid', ''))[-4:]}".strip()
    if kind == "NumberSimSwapped":
        return f"{d.get('reason', '')}, new SIM …{str(d.get('new_iccid', ''))[-4:]}"
    if kind == "NumberSuspended":
        return f"{d.get('reason', '')}, {d['note']}" if d.get("note") else str(d.get("reason", ""))
    if kind == "NumberResumed":
        return str(d.get("note", ""))
    if kind == "NumberDisconnected":
        return f"{d.get('reason', '')}, quarantine to {day('quarantine_until')}"
    if kind == "NumberDataClearanceConfirmed":
        return f"{d.get('holder', '')} cleared its data"
    if kind == "NumberReleased":
        return f"early: {d['override_reason']}" if d.get("override_reason") else "after quarantine and clearance"
    if kind == "NumberPortedOut":
        return f"to {d.get('recipient_operator', '')}"
    if kind == "NumberPortedIn":
        return f"from {d.get('donor_operator', '')}"
    if kind == "SubscriberRegistered":
        state = enum_name(event, "personal_data_state")
        return f"{d.get('id_type', '')}, data {state.lower()}"
    if kind == "SubscriberIdentityVerified":
        return f"{d.get('method', '')} via {d.get('channel', '')}"
    if kind == "SubscriberErasureRequested":
        return f"{d.get('legal_basis', '')}, due {day('due_at')}"
    if kind == "SubscriberPersonalDataErased":
        return str(d.get("legal_basis", ""))
    if kind == "AccessLogPersonalDataRead":
        return f"purpose: {d.get('purpose', '')}"
    return ", ".join(f"{k} {plain(v)}" for k, v in d.items() if v not in ("", None, []))


@dataclass
class Tenure:
    """One holding of the number, as the history shows it."""

    label: str
    subscriber_id: str
    start: Any
    end: Any = None
    ended: str = ""


def show_history(s: Session, as_of: date | datetime | None) -> int:
    """``ledger history NUMBER``."""
    args = s.args
    request = hpb.GetNumberHistoryRequest(
        number=args.number, include_personal_data=args.personal_data, purpose=(args.purpose or "").strip()
    )
    responses = list(s.history.GetNumberHistory(request, timeout=CALL_SECONDS))
    until = None
    if as_of is not None:
        # A date, or a time without offset, is in the policy's zone (asked of the server only then).
        aware = isinstance(as_of, datetime) and as_of.tzinfo is not None
        until = _moment(as_of, Times("UTC") if aware else s.times())
        responses = [r for r in responses if r.event.occurred_at.ToDatetime(tzinfo=UTC) <= until]
    if args.json:
        s.json(responses)
        return EXIT_ANSWERED
    times = s.times()
    events = [r.event for r in responses]
    labels: dict[str, str] = {}
    tenures: list[Tenure] = []
    for e in events:
        if e.type == "NumberActivated" and e.subscriber_id:
            label = labels.setdefault(e.subscriber_id, f"H{len(labels) + 1}")
            tenures.append(Tenure(label, e.subscriber_id, e.occurred_at))
        elif e.type in TENURE_ENDS and tenures and tenures[-1].end is None:
            tenures[-1].end, tenures[-1].ended = e.occurred_at, TENURE_ENDS[e.type]
            reason = json_format.MessageToDict(e.data).get("reason")
            if reason:
                tenures[-1].ended += f", {reason}"
    s.print(f"History of {args.number}: {plural(len(events), 'event')}, {plural(len(tenures), 'tenure')}")
    if until is not None:
        s.print(f"Up to {times.long(until)}.")
    s.print(times.legend(), "")
    rows = [
        [
            str(e.position),
            *times.columns(e.occurred_at),
            labels.get(e.subscriber_id, ""),
            MARKS.get(e.type, e.type),
            detail(e),
            e.actor,
        ]
        for e in events
    ]
    headers = ["POS", *times.headers(), "WHO", "WHAT", "DETAIL", "ACTOR"]
    widths = [6, *times.widths(), 6, 13, None, None]
    s.print(*table(headers, rows, widths))
    s.print("", "Who held the number")
    if not tenures:
        s.print("  nobody: no tenure" + (" up to then" if until is not None else ""))
    personal = {e.subscriber_id: e for e in events if e.type == "SubscriberRegistered"}
    for t in tenures:
        s.print(f"  {t.label}  subscriber {t.subscriber_id}")
        s.print(f"      from {times.long(t.start)}")
        if t.end is not None:
            s.print(f"      to   {times.long(t.end)}, {t.ended}")
        else:
            s.print("      to   then: held it at that time" if until is not None else "      to   now: holds it")
        registered = personal.get(t.subscriber_id)
        if registered is not None and args.personal_data:
            s.print(f"      {_personal(registered)}")
    return EXIT_ANSWERED


def _personal(event: lpb.LedgerEvent) -> str:
    state = enum_name(event, "personal_data_state")
    if state != "DISCLOSED":
        return f"personal data {state.lower()}"
    p = event.personal_data
    born = f", born {p.date_of_birth}" if p.date_of_birth else ""
    return clip(f"{p.full_name}, {enum_name(p, 'id_type')} {p.id_number}{born}", 90)


def show_trace(s: Session) -> int:
    """``ledger trace REQUEST_ID``."""
    args = s.args
    responses = list(s.history.TraceRequest(hpb.TraceRequestRequest(request_id=args.request_id), timeout=CALL_SECONDS))
    if args.json:
        s.json(responses)
        return EXIT_ANSWERED
    times = s.times()
    events = [r.event for r in responses]
    if not events:
        s.print(f"Request {args.request_id} was recorded, and changed no number or subscriber")
        return EXIT_ANSWERED
    first = events[0]
    where = f"{first.position}-{events[-1].position}" if len(events) > 1 else str(first.position)
    s.print(f"Request {args.request_id}: {plural(len(events), 'event')} at position {where}")
    s.print(*pairs([("by", first.actor), ("at", times.long(first.recorded_at))]), times.legend(), "")
    rows = [
        [
            str(e.position),
            *times.columns(e.occurred_at),
            e.number or f"subscriber {short_id(e.subscriber_id)}",
            MARKS.get(e.type, e.type),
            detail(e),
        ]
        for e in events
    ]
    headers = ["POS", *times.headers(), "NUMBER", "WHAT", "DETAIL"]
    widths = [6, *times.widths(), 19, 13, None]
    s.print(*table(headers, rows, widths))
    return EXIT_ANSWERED
