"""RecyclingService: recycling checks and clearance, answered from the read models."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.domain import errors
from ledger.domain.base import Clearance
from ledger.server.limits import caller_key
from ledger.server.validation import Fields
from ledger.v1 import ledger_pb2, recycling_service_pb2_grpc
from ledger.v1 import recycling_service_pb2 as pb
from projections.queries import CheckAnswer, Decision, day_bounds, decide
from projections.views import from_us

if TYPE_CHECKING:
    from ledger.config import Policy
    from ledger.server.limits import Budget
    from ledger.server.progress import Progress
    from projections.queries import ReadModels

T = TypeVar("T")
MAX_QUERIES_PER_BATCH = 10_000
# How long a check may wait for the read model when the caller set no deadline.
DEFAULT_WAIT_SECONDS = 5.0
# The sync server reports a call without a deadline as this many seconds remaining (about 2**63 ns).
NO_DEADLINE = 1e9
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


def check_result(answer: CheckAnswer, head: int = 0) -> ledger_pb2.CheckResult:
    """A check answer as the API's CheckResult (``head``: the ledger head the server knew)."""
    result = ledger_pb2.CheckResult(
        number=answer.number,
        status=STATUS[answer.status],  # type: ignore[arg-type]
        phone_number_changed=answer.status == "CHANGED",
        clearance=CLEARANCE[answer.clearance],
        outstanding_holders=answer.outstanding_holders,
        as_of_position=answer.as_of_position,
        head_position=max(head, answer.as_of_position),
    )
    if answer.last_disconnected_us is not None:
        seconds, micros = divmod(answer.last_disconnected_us, 1_000_000)
        result.last_disconnected_at.seconds = seconds
        result.last_disconnected_at.nanos = micros * 1000
    return result


def encode_results(decisions: Sequence[tuple[str, Decision]], position: int, head: int = 0) -> bytes:
    """A BatchCheckResponse's wire bytes for (number, decision) pairs, built without a message per result.

    A result is its number (field 1), its status (2, 3), its last disconnection (4) and the rest (5-7).
    The status and the rest repeat across a batch: they are serialised by protobuf once per distinct
    value and reused. Fields are written in number order, as protobuf writes them, so the bytes equal
    ``BatchCheckResponse(results=[check_result(...) ...]).SerializeToString()``."""
    head = max(head, position)
    tails: dict[Decision, bytes] = {}  # whole tails of the answers without a disconnection
    pieces: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}  # the parts around a disconnection time
    parts: list[bytes] = []
    append = parts.append
    for number, decision in decisions:
        encoded = number.encode()
        if decision[1] is None:
            tail = tails.get(decision)
            if tail is None:
                tail = tails[decision] = b"".join(_tail_pieces(decision, position, head))
        else:
            status, last, clearance, holders = decision
            key = (status, clearance, *holders)
            around = pieces.get(key)
            if around is None:
                around = pieces[key] = _tail_pieces(decision, position, head)
            seconds, micros = divmod(last, 1_000_000)  # type: ignore[operator]
            moment = Timestamp(seconds=seconds, nanos=micros * 1000).SerializeToString()
            # A Timestamp is at most 18 bytes, so its length is one byte.
            tail = b"".join((around[0], _TIMESTAMP_TAG, _LENGTH[len(moment)], moment, around[1]))
        size = len(encoded)
        if size == 0:  # proto3 leaves an empty string out (validation refuses one before this)
            append(_field1(len(tail)))
            append(tail)
            continue
        body = size + 2 + len(tail) if size < 128 else size + len(_varint(size)) + 1 + len(tail)
        append(_field1(body))
        append(_field1(size))
        append(encoded)
        append(tail)
    return b"".join(parts)


def _tail_pieces(decision: Decision, position: int, head: int) -> tuple[bytes, bytes]:
    status, _, clearance, holders = decision
    return (
        ledger_pb2.CheckResult(
            status=STATUS[status],  # type: ignore[arg-type]
            phone_number_changed=status == "CHANGED",
        ).SerializeToString(),
        ledger_pb2.CheckResult(
            clearance=CLEARANCE[clearance], outstanding_holders=holders, as_of_position=position, head_position=head
        ).SerializeToString(),
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Field 1, length-delimited (tag byte 0x0a), and its length: the prefix of a number and of a result.
_LENGTH = [bytes((n,)) for n in range(128)]
_SHORT_FIELD1 = [b"\n" + n for n in _LENGTH]
_TIMESTAMP_TAG = b"\x22"  # field 4, length-delimited


def _field1(size: int) -> bytes:
    return _SHORT_FIELD1[size] if size < 128 else b"\n" + _varint(size)


def _serialize(response: bytes | Any) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def add_to_server(servicer: RecyclingServicer, server: grpc.Server) -> None:
    """Register the service as the generated ``add_RecyclingServiceServicer_to_server`` does, except that
    BatchCheck's responses arrive already encoded (see ``encode_results``)."""
    handlers = {
        "CheckNumber": grpc.unary_unary_rpc_method_handler(
            servicer.CheckNumber,
            request_deserializer=pb.CheckNumberRequest.FromString,
            response_serializer=pb.CheckNumberResponse.SerializeToString,
        ),
        "BatchCheck": grpc.stream_stream_rpc_method_handler(
            servicer.BatchCheck, request_deserializer=pb.BatchCheckRequest.FromString, response_serializer=_serialize
        ),
        "GetClearance": grpc.unary_unary_rpc_method_handler(
            servicer.GetClearance,
            request_deserializer=pb.GetClearanceRequest.FromString,
            response_serializer=pb.GetClearanceResponse.SerializeToString,
        ),
    }
    name = pb.DESCRIPTOR.services_by_name["RecyclingService"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)  # type: ignore[attr-defined]


class RecyclingServicer(recycling_service_pb2_grpc.RecyclingServiceServicer):
    """Answers "did this number change hands since this date, and was the old owner's data cleared"."""

    def __init__(
        self, read_models: ReadModels, policy: Policy, progress: Progress, waits: Budget | None = None
    ) -> None:
        self.read_models = read_models
        self.waits = waits
        self.policy = policy
        self.zone = policy.zone
        self.progress = progress

    def CheckNumber(self, request: pb.CheckNumberRequest, context: grpc.ServicerContext) -> pb.CheckNumberResponse:
        """Check one number."""
        f = Fields()
        number = f.msisdn("number", request.number)
        since = f.date("since_date", request.since_date)
        f.done()
        assert since is not None
        if request.min_position:
            self._await(request.min_position, context)
        answer = self._read(lambda: self.read_models.check([(number, since)], self.zone))[0]
        return pb.CheckNumberResponse(result=check_result(answer, self._standing(answer.as_of_position)))

    def BatchCheck(
        self, request_iterator: Iterator[pb.BatchCheckRequest], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """One response per request, results in the order asked (each an encoded BatchCheckResponse)."""
        for request in request_iterator:
            position, decisions = self._read(lambda q=request.queries: self._decide(q))  # type: ignore[misc]
            yield encode_results(decisions, position, self._standing(position))

    def _decide(self, queries: Sequence[ledger_pb2.CheckQuery]) -> tuple[int, list[tuple[str, Decision]]]:
        f = Fields()
        if len(queries) > MAX_QUERIES_PER_BATCH:
            f.add("queries", f"at most {MAX_QUERIES_PER_BATCH} queries per request")
            f.done()
        numbers = [q.number for q in queries]
        # Numbers are looked up as given first: those the ledger knows were validated when provisioned, so
        # only the others are parsed (and looked up again in canonical form when that differs).
        position, rows = self.read_models.check_rows(numbers)
        again: list[int] = []
        for i, row in enumerate(rows):
            if row is None:
                parsed = f.msisdn(f"queries[{i}].number", numbers[i])
                if parsed != numbers[i]:
                    numbers[i] = parsed
                    again.append(i)
        if again:
            _, more = self.read_models.check_rows([numbers[i] for i in again])
            for i, row in zip(again, more, strict=True):
                rows[i] = row
        days: dict[str, tuple[int, int] | None] = {}
        sinces = [q.since_date for q in queries]
        for i, since in enumerate(sinces):
            if since not in days:
                day = f.date(f"queries[{i}].since_date", since)
                days[since] = None if day is None else day_bounds(day, self.zone)
            elif days[since] is None:
                f.date(f"queries[{i}].since_date", since)
        f.done()
        return position, [
            (n, decide(row, days[since]))  # type: ignore[arg-type]
            for n, since, row in zip(numbers, sinces, rows, strict=True)
        ]

    def GetClearance(self, request: pb.GetClearanceRequest, context: grpc.ServicerContext) -> pb.GetClearanceResponse:
        """Clearance of each closed tenure of a number."""
        f = Fields()
        number = f.msisdn("number", request.number)
        f.done()
        row = self._read(lambda: self.read_models.numbers([number])).get(number)
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

    def _read(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except errors.ReadModelRebuilding as e:
            e.head = self.progress.head
            raise

    def _standing(self, as_of: int) -> int:
        """The head an answer at ``as_of`` stands beside; refuses answers the ledger does not support:
        views beyond the ledger's head (a restored ledger), or older than the policy allows."""
        head = self.progress.head
        if as_of > head:
            head = self.progress.refresh_head()
            if as_of > head:
                raise errors.ReadModelMismatch(
                    f"the read models are at position {as_of}, beyond the ledger's head {head} (a restored or "
                    "another ledger); rebuild them with `ledger project --rebuild`"
                )
        limit = self.policy.max_check_lag_seconds
        if limit:
            lag = self.progress.lag_seconds(as_of)
            if lag > limit:
                raise errors.ReadModelBehind(
                    head,
                    as_of,
                    f"the read model is {lag:.1f}s behind the ledger (position {as_of} of {head}; policy "
                    f"max_check_lag_seconds {limit}); retry",
                )
        return head

    def _await(self, position: int, context: grpc.ServicerContext) -> None:
        remaining = context.time_remaining()
        if remaining is None or remaining > NO_DEADLINE:
            timeout = DEFAULT_WAIT_SECONDS
        else:  # answer a little before the deadline, so the caller reads why rather than DEADLINE_EXCEEDED
            timeout = max(0.0, remaining - min(0.25, max(0.02, remaining * 0.1)))
        if self.progress.views_position >= position:
            return
        release = self.waits.take(caller_key(context)) if self.waits else None
        try:
            if not self.progress.wait(position, timeout, context.is_active):
                raise errors.ReadModelBehind(position, self.progress.views_position)
        finally:
            if release:
                release()


def _uuid(hex_id: str) -> str:
    return f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"


def _set(field: Any, value_us: int | None) -> None:
    moment = from_us(value_us)
    if moment is not None:
        field.FromDatetime(moment)
