"""The people commands: their options, checked before any call, and how one runs (exit codes, refusals)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc

from ledger.cli import UsageError
from ledger.connection import AddMetadata, Connection, add_connection_arguments
from ledger.console.answers import show_check, show_simswap
from ledger.console.health import show_status, show_verify
from ledger.console.history import show_history, show_trace
from ledger.console.refusals import EXIT_ANSWERED, exit_code, in_words
from ledger.console.session import Session

ACTOR_KEY = "x-ledger-actor"  # the metadata a server without --auth records as the actor
COMMANDS = ("history", "check", "simswap", "status", "verify", "trace")


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
