"""RecyclingService: recycling checks and clearance, answered from the read models."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

import grpc

from ledger.domain import errors
from ledger.domain.base import Clearance
from ledger.server.validation import Fields
from ledger.v1 import ledger_pb2, recycling_service_pb2_grpc
from ledger.v1 import recycling_service_pb2 as pb
from projections.views import from_us

if TYPE_CHECKING:
    from ledger.config import Policy
    from projections.queries import CheckAnswer, ReadModels

MAX_QUERIES_PER_BATCH = 10_000
CANONICAL = re.compile(r"^\+[1-9][0-9]{6,14}$")
# How long a check may wait for the read model when the caller set no deadline.
DEFAULT_WAIT_SECONDS = 5.0
STATUS = {
    "NOT_CHANGED": ledger_pb2.CHECK_STATUS_NOT_CHANGED,
    "CHANGED": ledger_pb2.CHECK_STATUS_CHANGED,
    "NO_DATA": ledger_pb2.CHECK_STATUS_NO_DATA,
}
CLEARANCE: dict[Clearance, Any] = {
    Clearance.NOT_APPLICABLE: ledger_pb2.CLEARANCE_NOT_APPLICABLE,
    Clearance.CLEARED: ledger_pb2.CLEARANCE_CLEARED,
    Clearance.PENDING: ledger_pb2.CLEARANCE_PENDING,
    Clearance.VIOLATION: ledger_pb2.CLEARANCE_VIOLATION,
}


def check_result(answer: CheckAnswer) -> ledger_pb2.CheckResult:
    """A check answer as the API's CheckResult."""
    result = ledger_pb2.CheckResult(
        number=answer.number,
        status=STATUS[answer.status],  # type: ignore[arg-type]
        phone_number_changed=answer.phone_number_changed,
        clearance=CLEARANCE[answer.clearance],
        outstanding_holders=answer.outstanding_holders,
        as_of_position=answer.as_of_position,
    )
    if answer.last_disconnected_at is not None:
        result.last_disconnected_at.FromDatetime(answer.last_disconnected_at)
    return result


class RecyclingServicer(recycling_service_pb2_grpc.RecyclingServiceServicer):
    """Answers "did this number change hands since this date, and was the old owner's data cleared"."""

    def __init__(
        self, read_models: ReadModels, policy: Policy, wait_for: Callable[[int, float], bool] | None = None
    ) -> None:
        self.read_models = read_models
        self.policy = policy
        self.zone = policy.zone
        self._wait_for = wait_for or self._poll

    def CheckNumber(self, request: pb.CheckNumberRequest, context: grpc.ServicerContext) -> pb.CheckNumberResponse:
        """Check one number."""
        f = Fields()
        number = f.msisdn("number", request.number)
        since = f.date("since_date", request.since_date)
        f.done()
        if request.min_position:
            self._await(request.min_position, context)
        answer = self.read_models.check([(number, since or date.min)], self.zone)[0]
        return pb.CheckNumberResponse(result=check_result(answer))

    def BatchCheck(
        self, request_iterator: Iterator[pb.BatchCheckRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.BatchCheckResponse]:
        """One response per request, results in the order asked."""
        for request in request_iterator:
            f = Fields()
            if len(request.queries) > MAX_QUERIES_PER_BATCH:
                f.add("queries", f"at most {MAX_QUERIES_PER_BATCH} queries per request")
                f.done()
            # Numbers the ledger knows were validated when they were provisioned, so a query already in
            # canonical E.164 form that is found needs no parsing; the others are validated in full.
            numbers = [q.number if CANONICAL.match(q.number) else "" for q in request.queries]
            position = self.read_models.position()
            rows = self.read_models.numbers([n for n in numbers if n])
            queries: list[tuple[str, date]] = []
            for i, q in enumerate(request.queries):
                number = numbers[i] if numbers[i] in rows else f.msisdn(f"queries[{i}].number", q.number)
                since = f.date(f"queries[{i}].since_date", q.since_date)
                if since is not None:
                    queries.append((number, since))
            f.done()
            answers = self.read_models.check(queries, self.zone, rows=rows, position=position)
            yield pb.BatchCheckResponse(results=[check_result(a) for a in answers])

    def GetClearance(self, request: pb.GetClearanceRequest, context: grpc.ServicerContext) -> pb.GetClearanceResponse:
        """Clearance of each closed tenure of a number."""
        f = Fields()
        number = f.msisdn("number", request.number)
        f.done()
        row = self.read_models.numbers([number]).get(number)
        if row is None:
            raise errors.NumberNotFound(number)
        response = pb.GetClearanceResponse(number=number)
        for t in row.tenures:
            if t.disconnected_us is None:
                continue
            item = response.tenures.add(
                tenure_id=_uuid(t.tenure_id),
                subscriber_id=_uuid(t.subscriber_id),
                clearance=CLEARANCE[t.clearance],
                required_holders=t.required_holders,
                outstanding_holders=t.outstanding_holders,
                override_reason=t.override_reason,
            )
            _set(item.disconnected_at, t.disconnected_us)
            _set(item.quarantine_until, t.quarantine_until_us)
            _set(item.released_at, t.released_us)
            for holder, evidence_ref, at in t.confirmations:
                confirmation = item.confirmations.add(holder=holder, evidence_ref=evidence_ref)
                _set(confirmation.confirmed_at, at)
        return response

    def _await(self, position: int, context: grpc.ServicerContext) -> None:
        remaining = context.time_remaining()
        timeout = DEFAULT_WAIT_SECONDS if remaining is None else max(0.0, remaining - 0.05)
        if not self._wait_for(position, timeout):
            raise errors.ReadModelBehind(position, self.read_models.position())

    def _poll(self, position: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.read_models.position() < position:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True


def _uuid(hex_id: str) -> str:
    return f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"


def _set(field: Any, value_us: int | None) -> None:
    moment = from_us(value_us)
    if moment is not None:
        field.FromDatetime(moment)
