"""BatchCheck answers are encoded by hand for speed; the bytes must be exactly what protobuf writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.rules import Clearance
from ledger.server.wire import check_result, encode_results
from ledger.v1 import recycling_service_pb2 as rpb
from projections.answers import Checks
from projections.recycling import Decision

decisions = st.builds(
    Decision,
    st.sampled_from(["NOT_CHANGED", "CHANGED", "NO_DATA"]),
    st.one_of(st.none(), st.integers(min_value=0, max_value=253402300799_999999)),
    st.sampled_from(list(Clearance)),
    st.lists(st.text(min_size=1, max_size=70), max_size=4, unique=True).map(tuple),
    st.one_of(st.none(), st.integers(min_value=0, max_value=253402300799_999999)),  # ported out at
    st.sampled_from(["", "UNKNOWN_NUMBER", "RECORDS_BEGIN_LATER", "PORTED_OUT"]),
    st.booleans(),  # held now
)
numbers = st.one_of(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True), st.text(max_size=200))


@given(st.lists(st.tuples(numbers, decisions), max_size=30), st.integers(min_value=0, max_value=2**63))
def test_encoded_results_equal_protobuf_serialisation(pairs, position) -> None:
    encoded = encode_results(Checks(position, [n for n, _ in pairs], [d for _, d in pairs]))
    expected = rpb.BatchCheckResponse(results=[check_result(n, d, position) for n, d in pairs])
    assert encoded == expected.SerializeToString()
    assert rpb.BatchCheckResponse.FromString(encoded) == expected


def test_long_results_use_multi_byte_lengths() -> None:
    decision = Decision("CHANGED", 1_760_000_000_000_001, Clearance.PENDING, ("h" * 100, "crm"), None, "", True)
    encoded = encode_results(Checks(7, ["+8613800000001"], [decision]))
    assert len(encoded) > 130
    (result,) = rpb.BatchCheckResponse.FromString(encoded).results
    assert list(result.outstanding_holders) == ["h" * 100, "crm"] and result.last_disconnected_at.nanos == 1000
    assert result.held_now
