"""Errors that fit in a status: thousands of bad values still answer INVALID_ARGUMENT with a BadRequest."""

from __future__ import annotations

import grpc
import pytest

from ledger.server.errors import MAX_FIELD_VIOLATIONS
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.e2e.test_lifecycle_grpc import details


@pytest.mark.parametrize("bad", [100, 5000])
def test_batch_check_with_many_bad_numbers_gets_a_capped_bad_request(server, bad: int) -> None:
    stubs, _ = server
    queries = [ledger_pb2.CheckQuery(number=f"x{i}", since_date="2026-01-01") for i in range(bad)]
    with pytest.raises(grpc.RpcError) as e:
        list(stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=queries)]), timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    reason, violations = details(e.value)
    assert reason == "INVALID_ARGUMENT"
    assert len(violations) == MAX_FIELD_VIOLATIONS + 1
    assert [f for f, _ in violations[:MAX_FIELD_VIOLATIONS]] == [f"queries[{i}].number" for i in range(50)]
    field, text = violations[-1]
    assert field == "queries" and f"{bad - MAX_FIELD_VIOLATIONS} more" in text
    assert len(e.value.details() or "") < 2000


def test_provision_with_thousands_of_bad_numbers_gets_a_capped_bad_request(server) -> None:
    stubs, _ = server
    request = lpb.ProvisionNumbersRequest(request_id="p", numbers=[f"bad-{i}" for i in range(3000)])
    with pytest.raises(grpc.RpcError) as e:
        stubs.lifecycle.ProvisionNumbers(request, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    _, violations = details(e.value)
    assert len(violations) == MAX_FIELD_VIOLATIONS + 1
    assert "2950 more" in violations[-1][1]
