"""Every value of every proto enum maps onto the domain's (or the application's) vocabulary, and back:
a value added on one side only fails here, not in production."""

from __future__ import annotations

from enum import StrEnum

import pytest

from ledger.application.reads import PersonalState, StreamType
from ledger.domain.rules import (
    Clearance,
    DisconnectReason,
    IdType,
    NumberStatus,
    SimSwapReason,
    SuspensionReason,
    VerificationMethod,
)
from ledger.server import convert
from ledger.v1 import ledger_pb2

PAIRS = [
    (ledger_pb2.NumberStatus, "NUMBER_STATUS_", NumberStatus, convert.STATUSES),
    (ledger_pb2.IdType, "ID_TYPE_", IdType, convert.ID_TYPES),
    (ledger_pb2.VerificationMethod, "VERIFICATION_METHOD_", VerificationMethod, convert.METHODS),
    (ledger_pb2.SuspensionReason, "SUSPENSION_REASON_", SuspensionReason, convert.SUSPENSION_REASONS),
    (ledger_pb2.DisconnectReason, "DISCONNECT_REASON_", DisconnectReason, convert.DISCONNECT_REASONS),
    (ledger_pb2.SimSwapReason, "SIM_SWAP_REASON_", SimSwapReason, convert.SWAP_REASONS),
    (ledger_pb2.Clearance, "CLEARANCE_", Clearance, convert.CLEARANCES),
    (ledger_pb2.PersonalDataState, "PERSONAL_DATA_STATE_", PersonalState, convert.PERSONAL_DATA_STATES),
]


@pytest.mark.parametrize(("proto", "prefix", "domain", "mapping"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_every_proto_value_has_exactly_one_domain_value(proto, prefix, domain: type[StrEnum], mapping) -> None:
    values = {v.number: v.name for v in proto.DESCRIPTOR.values}
    assert values[0] == prefix + "UNSPECIFIED"
    assert {number: prefix + name for number, name in mapping.items()} == {n: v for n, v in values.items() if n}
    assert sorted(mapping.values()) == sorted(member.value for member in domain)


def test_every_stream_type_is_translated() -> None:
    proto = {v.number for v in ledger_pb2.StreamType.DESCRIPTOR.values if v.number}
    assert set(convert.STREAM_TYPES) == set(StreamType)
    assert set(convert.STREAM_TYPES.values()) == proto


def test_recycling_answers_translate_every_status_and_clearance() -> None:
    from ledger.server import wire as recycling  # the answers on the wire

    statuses = {v.number for v in ledger_pb2.CheckStatus.DESCRIPTOR.values if v.number}
    assert set(recycling.STATUS.values()) == statuses
    assert {k: v for k, v in recycling.CLEARANCE.items()} == {
        Clearance(name): number for name, number in convert.CLEARANCE_VALUES.items()
    }


def test_every_match_result_is_translated() -> None:
    from ledger.domain.rules import MatchResult
    from ledger.server.identity import MATCH_RESULTS
    from ledger.v1 import identity_service_pb2

    proto = {v.name: v.number for v in identity_service_pb2.MatchResult.DESCRIPTOR.values if v.number}
    assert set(MATCH_RESULTS) == set(MatchResult)
    assert {f"MATCH_RESULT_{r.value}": n for r, n in MATCH_RESULTS.items()} == proto
