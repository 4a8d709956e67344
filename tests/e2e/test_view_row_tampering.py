"""View rows edited behind the server's back, on the wire: the affected numbers answer UNAVAILABLE
READ_MODEL_MISMATCH (CheckNumber, GetClearance, CheckSimSwap, GetSimSwap), in a batch that entry alone,
and VerifyReadModels names them. Which edits are caught, the log, the audit and its repair are in
tests/integration/test_view_rows.py."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import number
from tests.integration.test_view_rows import tamper_views

SINCE = "2026-01-05"
MISMATCH = (grpc.StatusCode.UNAVAILABLE, "READ_MODEL_MISMATCH")


def _refused(call: Any, request: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    status = rpc_status.from_call(caught.value)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return caught.value.code(), info.reason
    return caught.value.code(), ""


def test_edited_view_rows_answer_mismatch_for_their_numbers_alone(server, settings) -> None:
    stubs, app = server
    for i in (1, 2, 3):
        stubs.onboard(number(i), i)
        stubs.lifecycle.DisconnectNumber(
            lpb.DisconnectNumberRequest(
                request_id=stubs.rid(), number=number(i), reason=ledger_pb2.DISCONNECT_REASON_SUBSCRIBER_REQUEST
            )
        )
    for i in (4, 5):
        stubs.onboard(number(i), i)
    assert stubs.projector.wait_for(app.reader.max_position(), 20)
    tamper_views(settings)

    recycling = stubs.recycling
    assert _refused(recycling.CheckNumber, rpb.CheckNumberRequest(number=number(1), since_date=SINCE)) == MISMATCH
    assert _refused(recycling.GetClearance, rpb.GetClearanceRequest(number=number(2))) == MISMATCH
    assert _refused(recycling.CheckSimSwap, rpb.CheckSimSwapRequest(number=number(5), max_age_hours=240)) == MISMATCH
    assert _refused(recycling.GetSimSwap, rpb.GetSimSwapRequest(number=number(3))) == MISMATCH
    check = recycling.CheckNumber(rpb.CheckNumberRequest(number=number(4), since_date=SINCE), timeout=10)
    assert check.result.status == ledger_pb2.CHECK_STATUS_NOT_CHANGED
    queries = [ledger_pb2.CheckQuery(number=number(i), since_date=SINCE) for i in (1, 4)]
    (response,) = list(recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=queries)]), timeout=10))
    assert [(r.status, r.no_data_reason) for r in response.results] == [
        (ledger_pb2.CHECK_STATUS_NO_DATA, ledger_pb2.NO_DATA_REASON_READ_MODEL_MISMATCH),
        (ledger_pb2.CHECK_STATUS_NOT_CHANGED, ledger_pb2.NO_DATA_REASON_UNSPECIFIED),
    ]
    swaps = [rpb.SimSwapQuery(number=number(i), max_age_hours=240) for i in (4, 5)]
    (answered,) = list(recycling.BatchCheckSimSwap(iter([rpb.BatchCheckSimSwapRequest(queries=swaps)]), timeout=10))
    assert [r.answer for r in answered.results] == [
        rpb.SIM_SWAP_ANSWER_ANSWERED,
        rpb.SIM_SWAP_ANSWER_READ_MODEL_MISMATCH,
    ]

    report = stubs.history.VerifyReadModels(hpb.VerifyReadModelsRequest())
    assert not report.ok and report.numbers_checked == 5 and report.as_of_position == app.reader.max_position()
    assert {m.number for m in report.mismatches} == {number(1), number(2), number(3), number(5)}
    assert any(m.field == "rm_numbers.status" and m.stored == "ACTIVE" for m in report.mismatches)
    assert stubs.history.VerifyReadModels(hpb.VerifyReadModelsRequest(number=number(4))).ok
