"""recycling_check builds its BatchCheck requests as bytes: they must be protobuf's bytes exactly."""

from __future__ import annotations

from ledger.v1 import ledger_pb2
from ledger.v1 import recycling_service_pb2 as rpb
from scripts.recycling.rows import DATE_SHAPE, NUMBER_SHAPE, encode_queries


def test_requests_are_the_bytes_protobuf_writes() -> None:
    # The shortest and longest numbers the shape lets through, and canonical E.164 forms.
    queries = [("+12345", "2026-01-05"), ("+123456789012345", "1999-12-31"), ("+8613800138000", "2026-11-30")]
    assert all(NUMBER_SHAPE.fullmatch(n) and DATE_SHAPE.fullmatch(d) for n, d in queries)
    rows = [(i, None, n, d) for i, (n, d) in enumerate(queries)]
    expected = rpb.BatchCheckRequest(queries=[ledger_pb2.CheckQuery(number=n, since_date=d) for n, d in queries])
    assert encode_queries(rows) == expected.SerializeToString()
    assert encode_queries([]) == rpb.BatchCheckRequest().SerializeToString()
