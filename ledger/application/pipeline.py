"""The command pipeline: idempotency by request id, the decision, an atomic save, and the one bounded
retry loop every write of the application goes through."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.application.unit_of_work import CommandResult, ImmediateUnitOfWork, Outcome, UnitOfWork
from ledger.domain import errors
from ledger.domain.context import Context
from ledger.domain.indexes import RequestRecord

if TYPE_CHECKING:
    from ledger.application.app import LedgerApplication

MAX_ATTEMPTS = 40
T = TypeVar("T")

Handler = Callable[[UnitOfWork, Context], Outcome]


@dataclass(frozen=True)
class Command:
    """One lifecycle command as the pipeline runs it: its RPC name, request id, caller, arguments (which
    the request id's fingerprint covers), how it is decided, and the streams it will load."""

    method: str
    request_id: str
    actor: str
    occurred_at: datetime | None
    args: dict[str, Any]
    handle: Handler
    streams: tuple[UUID, ...] = ()


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


def execute(app: LedgerApplication, command: Command, unit: UnitOfWork | None = None) -> CommandResult:
    """Run one command: its request record and streams are read together, then it is decided against
    them, then everything is saved atomically (retried on conflict), or held by a staged ``unit``."""
    if command.occurred_at is not None:
        _check_not_future(app, command.occurred_at)
    payload = orjson.dumps(
        {"method": command.method, "args": command.args, "occurred_at": command.occurred_at},
        default=str,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    fingerprint = app.vault.fingerprint(payload)
    if unit is not None:
        return _decide(app, command, fingerprint, unit)
    return retrying(lambda: _decide(app, command, fingerprint, ImmediateUnitOfWork(app)), command.method)


def _decide(app: LedgerApplication, command: Command, fingerprint: str, unit: UnitOfWork) -> CommandResult:
    record_id = RequestRecord.create_id(command.request_id)
    unit.begin([record_id, *command.streams])
    try:
        prior = unit.request_record(record_id)
        if prior is not None:
            if prior.method != command.method or prior.fingerprint != fingerprint:
                raise errors.RequestIdReused(command.request_id, prior.method)
            position = app.reader.position_of(record_id, 1) or 0
            return CommandResult(position=position, data=dict(prior.result), replayed=True)
        ctx = Context(
            actor=command.actor, request_id=command.request_id, occurred_at=command.occurred_at or app.clock.now()
        )
        outcome = command.handle(unit, ctx)
    finally:
        unit.end()
    record = RequestRecord(method=command.method, fingerprint=fingerprint, result=outcome.data, **ctx.fields())
    return unit.save(outcome, record)


def _check_not_future(app: LedgerApplication, occurred_at: datetime) -> None:
    limit = app.clock.now() + timedelta(seconds=app.policy.max_clock_skew_seconds)
    if occurred_at > limit:
        raise errors.InvalidArgument(
            [("occurred_at", f"{occurred_at.isoformat()} is in the future (now {app.clock.now().isoformat()})")],
            reason="OCCURRED_AT_IN_FUTURE",
        )
