"""RecyclingService's answers on the wire: CheckResult messages, and BatchCheck's responses written as
bytes directly (fields in protobuf's own order, so the bytes equal what protobuf writes; a property test
holds it to that)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from ledger.domain.rules import Clearance
from ledger.v1 import ledger_pb2
from projections.recycling import CheckAnswer, Decision
from projections.views import from_us

STATUS = {
    "NOT_CHANGED": ledger_pb2.CHECK_STATUS_NOT_CHANGED,
    "CHANGED": ledger_pb2.CHECK_STATUS_CHANGED,
    "NO_DATA": ledger_pb2.CHECK_STATUS_NO_DATA,
}
NO_DATA_REASONS: dict[str, Any] = {
    "": ledger_pb2.NO_DATA_REASON_UNSPECIFIED,
    "UNKNOWN_NUMBER": ledger_pb2.NO_DATA_REASON_UNKNOWN_NUMBER,
    "RECORDS_BEGIN_LATER": ledger_pb2.NO_DATA_REASON_RECORDS_BEGIN_LATER,
    "PORTED_OUT": ledger_pb2.NO_DATA_REASON_PORTED_OUT,
    "READ_MODEL_MISMATCH": ledger_pb2.NO_DATA_REASON_READ_MODEL_MISMATCH,
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
        no_data_reason=NO_DATA_REASONS[answer.no_data_reason],
    )
    _set_us(result.last_disconnected_at, answer.last_disconnected_us)
    _set_us(result.ported_out_at, answer.ported_out_us)
    return result


def _set_us(field: Timestamp, value_us: int | None) -> None:
    if value_us is not None:
        seconds, micros = divmod(value_us, 1_000_000)
        field.seconds = seconds
        field.nanos = micros * 1000


def set_timestamp(field: Any, value_us: int | None) -> None:
    """Set a Timestamp field of an answer from microseconds since the epoch; leave it unset for None."""
    moment = from_us(value_us)
    if moment is not None:
        field.FromDatetime(moment)


def encode_results(decisions: Sequence[tuple[str, Decision]], position: int, head: int = 0) -> bytes:
    """A BatchCheckResponse's wire bytes for (number, decision) pairs, built without a message per result.

    A result is its number (field 1), its status (2, 3), its last disconnection (4) and the rest (5-8, 10).
    A result for a ported-out number (field 9 set) is rare and serialised by protobuf whole.
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
        if decision[4] is not None:
            whole = check_result(CheckAnswer(number, *decision, position), head).SerializeToString()
            tail = whole[len(_field1(len(encoded))) + len(encoded) :] if encoded else whole
        elif decision[1] is None:
            tail = tails.get(decision)
            if tail is None:
                tail = tails[decision] = b"".join(_tail_pieces(decision, position, head))
        else:
            status, last, clearance, holders, _, reason = decision
            key = (status, clearance, reason, *holders)
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
    status, _, clearance, holders, _, reason = decision
    return (
        ledger_pb2.CheckResult(
            status=STATUS[status],  # type: ignore[arg-type]
            phone_number_changed=status == "CHANGED",
        ).SerializeToString(),
        ledger_pb2.CheckResult(
            clearance=CLEARANCE[clearance],
            outstanding_holders=holders,
            as_of_position=position,
            head_position=head,
            no_data_reason=NO_DATA_REASONS[reason],
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
