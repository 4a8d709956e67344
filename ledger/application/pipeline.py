"""The command pipeline: idempotency by request id, the decision (the command's handler, found in
``handlers.COMMANDS``), an atomic save, and the one bounded retry loop every write of the application
goes through."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import orjson
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.application.handlers import COMMANDS
from ledger.application.unit_of_work import CommandResult, ImmediateUnitOfWork, UnitOfWork
from ledger.domain import errors
from ledger.domain.context import Context
from ledger.domain.indexes import RequestRecord

if TYPE_CHECKING:
    from ledger.application.commands import Command
    from ledger.application.unit_of_work import Ledger

MAX_ATTEMPTS = 40
T = TypeVar("T")


def is_conflict(exc: Exception) -> bool:
    """Whether a failed save lost a race with another writer (and may succeed against fresh state)."""
    if isinstance(exc, IntegrityError):
        return True
    return isinstance(exc, OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def retrying(attempt: Callable[[], T], what: str) -> T:
    """Run ``attempt`` until it does not conflict, at most MAX_ATTEMPTS times with a short random backoff;
    then ConcurrencyConflict."""
    for n in range(MAX_ATTEMPTS):
        try:
            return attempt()
        except (IntegrityError, OperationalError) as e:
            if not is_conflict(e):
                raise
            time.sleep(random.uniform(0, min(0.05, 0.002 * (n + 1))))
    raise errors.ConcurrencyConflict(
        f"{what} still conflicted with concurrent writers after {MAX_ATTEMPTS} attempts; retry"
    )


def execute(
    ledger: Ledger,
    command: Command,
    *,
    request_id: str,
    actor: str,
    occurred_at: datetime | None = None,
    unit: UnitOfWork | None = None,
) -> CommandResult:
    """Run one command sent by ``actor`` under ``request_id`` (``occurred_at``: when it happened, the
    clock's now when None): its request record and streams are read together, then its handler decides
    it against them, then everything is saved atomically (retried on conflict), or held by a staged
    ``unit``. A request id seen before answers the recorded result when the request is the same (its
    method, fields and occurred_at, by fingerprint), RequestIdReused when not."""
    if occurred_at is not None:
        _check_not_future(ledger, occurred_at)
    method = command.rpc
    payload = orjson.dumps(
        {"method": method, "args": command.args(), "occurred_at": occurred_at},
        default=str,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    request = _Request(command, method, request_id, actor, occurred_at, ledger.vault.fingerprint(payload))
    if unit is not None:
        return _decide(ledger, request, unit)
    return retrying(lambda: _decide(ledger, request, ImmediateUnitOfWork(ledger)), method)


@dataclass(frozen=True, slots=True)
class _Request:
    """A command with its request id, caller, time and fingerprint."""

    command: Command
    method: str
    request_id: str
    actor: str
    occurred_at: datetime | None
    fingerprint: str


def _decide(ledger: Ledger, request: _Request, unit: UnitOfWork) -> CommandResult:
    record_id = RequestRecord.create_id(request.request_id)
    unit.begin([record_id, *request.command.streams()])
    try:
        prior = unit.request_record(record_id)
        if prior is not None:
            if prior.method != request.method or prior.fingerprint != request.fingerprint:
                raise errors.RequestIdReused(request.request_id, prior.method)
            position = ledger.position_of(record_id, 1) or 0
            return CommandResult(position=position, data=dict(prior.result), replayed=True)
        ctx = Context(
            actor=request.actor,
            request_id=request.request_id,
            occurred_at=request.occurred_at or ledger.clock.now(),
        )
        outcome = COMMANDS[request.method].handle(request.command, unit, ctx)
    finally:
        unit.end()
    record = RequestRecord(method=request.method, fingerprint=request.fingerprint, result=outcome.data, **ctx.fields())
    return unit.save(outcome, record)


def _check_not_future(ledger: Ledger, occurred_at: datetime) -> None:
    now = ledger.clock.now()
    limit = now + timedelta(seconds=ledger.policy.max_clock_skew_seconds)
    if occurred_at > limit:
        raise errors.InvalidArgument(
            [("occurred_at", f"{occurred_at.isoformat()} is in the future (now {now.isoformat()})")],
            reason="OCCURRED_AT_IN_FUTURE",
        )
