"""RecyclingService's answers on the wire: CheckResult messages, and BatchCheck's responses written as
bytes directly (fields in protobuf's own order, so the bytes equal what protobuf writes; a property test
holds it to that)."""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from ledger.domain.rules import Clearance
from ledger.v1 import ledger_pb2, recycling_service_pb2
from projections import simswap
from projections.answers import Checks
from projections.recycling import Decision
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
SIM_SWAP_ANSWERS: dict[str, Any] = {
    simswap.ANSWERED: recycling_service_pb2.SIM_SWAP_ANSWER_ANSWERED,
    simswap.UNKNOWN_NUMBER: recycling_service_pb2.SIM_SWAP_ANSWER_UNKNOWN_NUMBER,
    simswap.PORTED_OUT: recycling_service_pb2.SIM_SWAP_ANSWER_PORTED_OUT,
    simswap.READ_MODEL_MISMATCH: recycling_service_pb2.SIM_SWAP_ANSWER_READ_MODEL_MISMATCH,
}
CLEARANCE: dict[Clearance, Any] = {
    Clearance.NOT_APPLICABLE: ledger_pb2.CLEARANCE_NOT_APPLICABLE,
    Clearance.CLEARED: ledger_pb2.CLEARANCE_CLEARED,
    Clearance.PENDING: ledger_pb2.CLEARANCE_PENDING,
    Clearance.VIOLATION: ledger_pb2.CLEARANCE_VIOLATION,
}


def check_result(number: str, decision: Decision, position: int, head: int = 0) -> ledger_pb2.CheckResult:
    """One number's decision as the API's CheckResult, at ``position`` (``head``: the ledger head the server
    knew). The one place a Decision field becomes a CheckResult field: ``encode_results`` writes its bytes."""
    result = ledger_pb2.CheckResult(
        number=number,
        status=STATUS[decision.status],  # type: ignore[arg-type]
        phone_number_changed=decision.phone_number_changed,
        clearance=CLEARANCE[decision.clearance],
        outstanding_holders=decision.outstanding_holders,
        as_of_position=position,
        head_position=max(head, position),
        no_data_reason=NO_DATA_REASONS[decision.no_data_reason],
        held_now=decision.held_now,
    )
    _set_us(result.last_disconnected_at, decision.last_disconnected_us)
    _set_us(result.ported_out_at, decision.ported_out_us)
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


def encode_results(checks: Checks, head: int = 0) -> bytes:
    """A BatchCheckResponse's wire bytes for checks answered, built without a message per result.

    A result is its number (field 1), its decision's fields before its last disconnection (4), the
    disconnection, its decision's fields up to its position and head (7, 8), those two, and its decision's
    fields after them. A decision's fields repeat across results and batches: they are serialised by
    protobuf once (``check_result``, which names every field; see ``_parts``) and reused. A result for a
    ported-out number (its ``ported_out_at`` set) is rare and serialised by protobuf whole. Fields are
    written in number order, as protobuf writes them, so the bytes equal
    ``BatchCheckResponse(results=[check_result(...) ...]).SerializeToString()`` (a property test holds it)."""
    position = checks.as_of_position
    head = max(head, position)
    at = ledger_pb2.CheckResult(as_of_position=position, head_position=head).SerializeToString()
    # Whole tails of the answers without a disconnection. Those decisions are the shared constants of
    # ``projections.recycling`` (no other is made without one), so they are found by identity: hashing a
    # decision's seven fields per result cost a twelfth of a batch.
    tails: dict[int, tuple[Decision, bytes]] = {}
    pieces: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}  # the parts around a disconnection time
    parts: list[bytes] = []
    append = parts.append
    for number, decision in zip(checks.numbers, checks.decisions, strict=True):
        encoded = number.encode()
        last = decision.last_disconnected_us
        if decision.ported_out_us is not None:
            whole = check_result(number, decision, position, head).SerializeToString()
            tail = whole[len(_field1(len(encoded))) + len(encoded) :] if encoded else whole
        elif last is None:
            known = tails.get(id(decision))
            if known is not None and known[0] is decision:
                tail = known[1]
            else:
                early, middle, late = _parts(decision)
                tail = b"".join((early, middle, at, late))
                tails[id(decision)] = (decision, tail)  # the decision kept: its id is not reused meanwhile
        else:
            key = decision[:1] + decision[2:]  # every field but the disconnection time
            around = pieces.get(key)
            if around is None:
                early, middle, late = _parts(decision)
                around = pieces[key] = (early, b"".join((middle, at, late)))
            seconds, micros = divmod(last, 1_000_000)
            moment = Timestamp(seconds=seconds, nanos=micros * 1000).SerializeToString()
            # A Timestamp is at most 18 bytes, so its length is one byte.
            tail = b"".join((around[0], _TIMESTAMP_TAG, _LENGTH[len(moment)], moment, around[1]))
        size = len(encoded)
        if size == 0:  # proto3 leaves an empty string out (validation refuses one before this)
            append(_field1(len(tail)))
            append(tail)
            continue
        if size < 128:  # a number and its result are short: their prefixes are looked up, not computed
            body = size + 2 + len(tail)
            append(_SHORT_FIELD1[body] if body < 128 else _field1(body))
            append(_SHORT_FIELD1[size])
        else:
            append(_field1(size + len(_varint(size)) + 1 + len(tail)))
            append(_field1(size))
        append(encoded)
        append(tail)
    return b"".join(parts)


# A decision's serialised fields (see ``_parts``), by the decision without its disconnection time; a few
# dozen in practice, bounded all the same.
_PARTS: dict[tuple[Any, ...], tuple[bytes, bytes, bytes]] = {}
_MAX_PARTS = 4096


def _parts(decision: Decision) -> tuple[bytes, bytes, bytes]:
    """A decision's fields serialised, in three runs of field numbers: before the last disconnection (4),
    between it and the position and head (7, 8), and after those (a field added later lands there)."""
    key = decision[:1] + decision[2:]
    found = _PARTS.get(key)
    if found is None:
        if len(_PARTS) >= _MAX_PARTS:
            _PARTS.clear()
        # Without a number, a disconnection time, a position and a head: those four are written per result.
        message = check_result("", decision._replace(last_disconnected_us=None), 0, 0)
        found = _PARTS[key] = (
            _serialised(message, 0, _LAST_DISCONNECTED),
            _serialised(message, _LAST_DISCONNECTED, _AS_OF),
            _serialised(message, _HEAD, 1 << 29),
        )
    return found


def _serialised(message: ledger_pb2.CheckResult, after: int, before: int) -> bytes:
    """The bytes of the fields of ``message`` numbered strictly between ``after`` and ``before``."""
    part = ledger_pb2.CheckResult()
    part.CopyFrom(message)
    for field, _ in message.ListFields():
        if not after < field.number < before:
            part.ClearField(field.name)
    return part.SerializeToString()


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
_LAST_DISCONNECTED = ledger_pb2.CheckResult.LAST_DISCONNECTED_AT_FIELD_NUMBER
# The two fields of a result that depend on the batch, not the decision (numbered next to each other).
_AS_OF, _HEAD = ledger_pb2.CheckResult.AS_OF_POSITION_FIELD_NUMBER, ledger_pb2.CheckResult.HEAD_POSITION_FIELD_NUMBER
_TIMESTAMP_TAG = bytes(((_LAST_DISCONNECTED << 3) | 2,))  # field 4, length-delimited


def _field1(size: int) -> bytes:
    return _SHORT_FIELD1[size] if size < 128 else b"\n" + _varint(size)
