"""The people commands: their options, their calls, and what they print."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from ledger.cli import UsageError
from ledger.connection import AddMetadata, Connection, add_connection_arguments
from ledger.console.refusals import EXIT_ANSWERED, EXIT_REFUSED, exit_code, in_words, reachable
from ledger.console.text import Times, clip, enum_name, pairs, plain, plural, short_id, table
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import history_service_pb2_grpc, recycling_service_pb2_grpc
from ledger.v1 import ledger_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb

ACTOR_KEY = "x-ledger-actor"  # the metadata a server without --auth records as the actor
COMMANDS = ("history", "check", "simswap", "status", "verify", "trace")
# A call that has not answered in this long is given up (exit 3: the server did not answer).
CALL_SECONDS = 60.0
# A read model this many events behind the head is worth a look.
LAG_WORTH_A_LOOK = 1000


def add_people_commands(sub: Any) -> None:
    """The six commands, each with the connection options, ``--json`` and ``--tz``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the RPC's response as protobuf JSON")
    common.add_argument(
        "--tz",
        default=os.environ.get("LEDGER_TZ") or None,
        help="time zone to show times in beside UTC (default: LEDGER_TZ, else the server's policy, else UTC)",
    )
    add_connection_arguments(common)
    history = sub.add_parser(
        "history", parents=[common], help="a number's history: who held it when, and everything recorded"
    )
    history.add_argument("number", help="the number, E.164 (+8613800138000)")
    history.add_argument("--as-of", help="only what happened up to this time (ISO 8601; a date means its end)")
    history.add_argument(
        "--personal-data", action="store_true", help="show the holders' personal data (recorded as a read)"
    )
    history.add_argument("--purpose", help="why personal data is read (required with --personal-data; recorded)")
    check = sub.add_parser("check", parents=[common], help="whether a number changed hands since a date")
    check.add_argument("number", help="the number, E.164")
    check.add_argument("--since", help="YYYY-MM-DD in the policy's time zone (default: today there)")
    simswap = sub.add_parser("simswap", parents=[common], help="when a number's SIM last changed")
    simswap.add_argument("number", help="the number, E.164")
    simswap.add_argument("--max-age", type=int, help="also say whether it changed within this many hours (1-2400)")
    sub.add_parser("status", parents=[common], help="the server's head, signed head, read models and settings")
    verify = sub.add_parser("verify", parents=[common], help="recompute the hash chains and the signed heads")
    verify.add_argument("--number", help="only the chains of one number and its holders")
    trace = sub.add_parser("trace", parents=[common], help="the events one request recorded")
    trace.add_argument("request_id", help="the request id the command was sent with")


@dataclass
class Session:
    """One command's channel, options and output."""

    args: argparse.Namespace
    channel: grpc.Channel
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    _times: Times | None = None

    @property
    def history(self) -> history_service_pb2_grpc.HistoryServiceStub:
        """HistoryService on the channel."""
        return history_service_pb2_grpc.HistoryServiceStub(self.channel)

    @property
    def recycling(self) -> recycling_service_pb2_grpc.RecyclingServiceStub:
        """RecyclingService on the channel."""
        return recycling_service_pb2_grpc.RecyclingServiceStub(self.channel)

    def times(self, known: str | None = None) -> Times:
        """How to show times: ``--tz``, else the zone the server's policy names (when this token may ask
        for the status), else UTC."""
        if self._times is None:
            zone = self.args.tz or known or self._server_zone()
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):  # a zone this machine's time zone data lacks
                print(f"ledger: this machine does not know the time zone {zone!r}; times in UTC", file=sys.stderr)
                zone = "UTC"
            self._times = Times(zone)
        return self._times

    def _server_zone(self) -> str:
        try:
            return str(self.history.GetStatus(hpb.GetStatusRequest(), timeout=CALL_SECONDS).time_zone or "UTC")
        except grpc.RpcError as e:
            if not reachable(e):
                raise
            return "UTC"  # a token without the compliance role: times in UTC only

    def print(self, *lines: str) -> None:
        """Write lines to the output."""
        for line in lines:
            print(line, file=self.out)

    def json(self, message: Message | Sequence[Message]) -> None:
        """The response as ``buf curl`` prints it (field names in lowerCamelCase, 64-bit integers as
        strings, enums by name); a stream as one JSON array of its messages."""
        if isinstance(message, Message):
            self.print(json_format.MessageToJson(message, indent=2, ensure_ascii=False))
        else:
            self.print(json.dumps([json_format.MessageToDict(m) for m in message], indent=2, ensure_ascii=False))


def run(args: argparse.Namespace) -> int:
    """Run one people command; the exit code says how it went."""
    if args.tz:
        _check_zone(args.tz)
    connection = Connection.from_args(args)
    plan = _plan(args)
    channel = connection.channel()
    if connection.token is None:
        channel = _named(channel)
    try:
        code = plan(Session(args, channel))
        sys.stdout.flush()  # inside the try: a reader gone by now is met here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader stopped reading (`ledger trace ID | head`): nothing more to say, and no one to say it to.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ANSWERED
    except grpc.RpcError as e:
        lines = in_words(e, connection.target)
        print(f"ledger {args.command}: {lines[0]}", file=sys.stderr)
        for line in lines[1:]:
            print(line, file=sys.stderr)
        return exit_code(e)
    finally:
        channel.close()


def _named(channel: grpc.Channel) -> grpc.Channel:
    """Without a token (a local server without --auth) the server records the actor a caller names: the
    person's login, so that a disclosure's record says who read the data."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry): the peer is recorded
        return channel
    return grpc.intercept_channel(channel, AddMetadata([(ACTOR_KEY, user)]))


def _plan(args: argparse.Namespace) -> Callable[[Session], int]:
    """The command to run, its options checked before any call (a usage error is exit 2)."""
    if args.command == "history":
        if args.personal_data and not (args.purpose or "").strip():
            raise UsageError("--personal-data needs --purpose TEXT (why the data is read; it is recorded)")
        if args.purpose and not args.personal_data:
            raise UsageError("--purpose goes with --personal-data")
        as_of = _as_of(args.as_of) if args.as_of else None
        return lambda s: show_history(s, as_of)
    if args.command == "simswap" and args.max_age is not None and not 1 <= args.max_age <= 2400:
        raise UsageError(f"--max-age {args.max_age}: the period is 1 to 2400 hours")
    if args.command == "check":
        since = _date(args.since) if args.since else None
        return lambda s: show_check(s, since)
    return {"simswap": show_simswap, "status": show_status, "verify": show_verify, "trace": show_trace}[args.command]


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {name!r} is not a time zone (an IANA name such as Asia/Shanghai, or UTC)") from None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r} is not a date YYYY-MM-DD") from None


def _as_of(text: str) -> date | datetime:
    """A date (its end, in the policy's zone), a time without offset (in that zone), or one with it."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--as-of {text!r} is not a date or time (ISO 8601: 2026-03-01 or 2026-03-01T12:00)") from None


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


CHECK_MEANING = {
    "CHANGED": "the number changed hands since then (not the same subscriber's)",
    "NOT_CHANGED": "the same subscriber has held it since then",
    "NO_DATA": "the ledger cannot tell",
}


def show_check(s: Session, since: date | None) -> int:
    """``ledger check NUMBER [--since DATE]``."""
    args = s.args
    day = since or datetime.now(s.times().zone).date()
    response = s.recycling.CheckNumber(
        rpb.CheckNumberRequest(number=args.number, since_date=day.isoformat()), timeout=CALL_SECONDS
    )
    if args.json:
        s.json(response)
        return EXIT_ANSWERED
    times = s.times()
    r = response.result
    status = enum_name(r, "status")
    meaning = CHECK_MEANING.get(status, "")
    if status == "NO_DATA":
        meaning += f": {enum_name(r, 'no_data_reason').replace('_', ' ').lower()}"
    s.print(f"{r.number} since {day.isoformat()} ({times.zone_name}): {status}", f"  {meaning}", "")
    items = [
        ("last disconnected", times.long(r.last_disconnected_at)),
        ("clearance", enum_name(r, "clearance")),
        ("outstanding holders", ", ".join(r.outstanding_holders) or "-"),
    ]
    if r.HasField("ported_out_at"):
        items.append(("ported out", times.long(r.ported_out_at)))
    items.append(("as of position", f"{r.as_of_position} (head {r.head_position})"))
    s.print(*pairs(items))
    if r.as_of_position < r.head_position:
        behind = r.head_position - r.as_of_position
        s.print(f"note: the read model was {plural(behind, 'event')} behind the head; `ledger status` shows why")
    return EXIT_ANSWERED


def show_simswap(s: Session) -> int:
    """``ledger simswap NUMBER [--max-age HOURS]``."""
    args = s.args
    checked = None
    if args.max_age is not None:
        checked = s.recycling.CheckSimSwap(
            rpb.CheckSimSwapRequest(number=args.number, max_age_hours=args.max_age), timeout=CALL_SECONDS
        )
        if args.json:
            s.json(checked)
            return EXIT_ANSWERED
    latest = s.recycling.GetSimSwap(rpb.GetSimSwapRequest(number=args.number), timeout=CALL_SECONDS)
    if args.json:
        s.json(latest)
        return EXIT_ANSWERED
    times = s.times()
    if checked is not None:
        s.print(
            f"{args.number}: SIM changed within the last {args.max_age} hours: {'YES' if checked.swapped else 'no'}"
        )
    else:
        s.print(f"{args.number}: SIM changes on record")
    s.print(
        *pairs(
            [
                (
                    "latest SIM change",
                    times.long(latest.latest_sim_change_at)
                    if latest.HasField("latest_sim_change_at")
                    else "none on record",
                ),
                ("records begin", times.long(latest.monitored_since)),
                ("as of position", str(latest.as_of_position)),
            ]
        )
    )
    return EXIT_ANSWERED


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
