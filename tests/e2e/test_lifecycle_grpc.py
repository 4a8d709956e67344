"""The lifecycle RPCs over a real gRPC server on loopback, on both stores: each RPC once, and each kind of
refusal as its status code, ErrorInfo reason and field violations. The rules behind them (every refusal,
the cap, occurred_at, retries) are tests/unit/test_lifecycle_requests.py, on the same requests."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import RESIDENT_DOB, RESIDENT_ID, imsi_for, new_iccid, number

# Every test here runs on both stores.
STORES = ("sqlite", "postgres")


def details(err: grpc.RpcError) -> tuple[str, list[tuple[str, str]]]:
    """(ErrorInfo.reason, [(field, description)]) from a call's rich status."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    reason, violations = "", []
    assert status is not None, "error has no google.rpc.Status details"
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            reason = info.reason
        elif any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            violations = [(v.field, v.description) for v in bad.field_violations]
    return reason, violations


def refused(call, request, code: grpc.StatusCode) -> tuple[str, list[tuple[str, str]]]:
    with pytest.raises(grpc.RpcError) as e:
        call(request)
    assert e.value.code() == code, e.value.details()
    return details(e.value)


def ts(dt: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt)
    return t


def test_every_lifecycle_rpc_once_and_a_rule_refused_on_the_wire(server, clock) -> None:
    stubs, app = server
    lc = stubs.lifecycle
    msisdn = number(1)
    lc.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="prov", numbers=[msisdn]))
    alice = lc.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(
            request_id="reg-alice",
            full_name="Alice Zhang",
            id_type=ledger_pb2.ID_TYPE_RESIDENT_ID_CARD,
            id_number=RESIDENT_ID,
            date_of_birth=RESIDENT_DOB,
        )
    ).subscriber_id
    iccid = new_iccid()
    activate = lpb.ActivateSimRequest(
        request_id="act-1",
        number=msisdn,
        subscriber_id=alice,
        iccid=iccid,
        imsi=imsi_for(iccid),
        channel="retail",
        agent_id="agent-7",
    )
    before = app.reader.max_position()
    reason, violations = refused(lc.ActivateSim, activate, grpc.StatusCode.FAILED_PRECONDITION)
    assert (reason, violations) == ("IDENTITY_NOT_VERIFIED", [])
    assert app.reader.max_position() == before
    lc.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id="ver-alice",
            subscriber_id=alice,
            method=ledger_pb2.VERIFICATION_METHOD_ID_CARD_READER,
            channel="retail",
            agent_id="agent-7",
            evidence_ref="scan-1",
        )
    )
    tenure = lc.ActivateSim(activate).tenure_id
    assert lc.ActivateSim(activate).tenure_id == tenure  # a retry answers the first response
    clock.advance(days=1)
    lc.SuspendNumber(
        lpb.SuspendNumberRequest(request_id="sus-1", number=msisdn, reason=ledger_pb2.SUSPENSION_REASON_LOST_SIM)
    )
    new_sim = new_iccid()
    lc.SwapSim(
        lpb.SwapSimRequest(
            request_id="swap-1",
            number=msisdn,
            new_iccid=new_sim,
            new_imsi=imsi_for(new_sim),
            reason=ledger_pb2.SIM_SWAP_REASON_LOST_OR_STOLEN,
            channel="retail",
            agent_id="agent-7",
        )
    )
    lc.ResumeNumber(lpb.ResumeNumberRequest(request_id="res-1", number=msisdn, note="new SIM"))
    state = stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=msisdn)).number_state
    assert state.state == ledger_pb2.NUMBER_STATUS_ACTIVE and state.current_tenure.iccid == new_sim
    assert state.subscriber_id == alice and state.verified
    disc = lc.DisconnectNumber(
        lpb.DisconnectNumberRequest(
            request_id="disc-1", number=msisdn, reason=ledger_pb2.DISCONNECT_REASON_SUBSCRIBER_REQUEST
        )
    )
    assert disc.tenure_id == tenure
    assert disc.quarantine_until.ToDatetime(tzinfo=UTC) == datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
    cleared = lc.ConfirmDataCleared(
        lpb.ConfirmDataClearedRequest(
            request_id="clr-crm", number=msisdn, tenure_id=tenure, holder="crm", evidence_ref="crm-ticket"
        )
    )
    assert cleared.clearance == ledger_pb2.CLEARANCE_PENDING
    lc.ReleaseNumber(lpb.ReleaseNumberRequest(request_id="rel-1", number=msisdn, override_reason="court order"))
    erased = lc.EraseSubscriberData(
        lpb.EraseSubscriberDataRequest(request_id="erase-1", subscriber_id=alice, legal_basis="PIPL art. 47")
    )
    assert erased.position > disc.position and not erased.HasField("erasure_due_at")

    history = [
        r.event
        for r in stubs.history.GetNumberHistory(
            hpb.GetNumberHistoryRequest(number=msisdn, include_personal_data=True, purpose="court order 2026/88")
        )
    ]
    assert [e.type for e in history if e.stream_type == ledger_pb2.STREAM_TYPE_NUMBER] == [
        "NumberProvisioned",
        "NumberActivated",
        "NumberSuspended",
        "NumberSimSwapped",
        "NumberResumed",
        "NumberDisconnected",
        "NumberDataClearanceConfirmed",
        "NumberReleased",
    ]
    (registered,) = [e for e in history if e.type == "SubscriberRegistered"]
    assert registered.personal_data_state == ledger_pb2.PERSONAL_DATA_STATE_ERASED
    past = stubs.history.GetNumberState(
        hpb.GetNumberStateRequest(number=msisdn, as_of=ts(datetime(2026, 1, 5, 12, tzinfo=UTC)))
    ).number_state
    assert past.subscriber_id == alice and past.state == ledger_pb2.NUMBER_STATUS_ACTIVE


def test_bad_input_names_every_field_and_records_nothing(server) -> None:
    stubs, app = server
    before = app.reader.max_position()
    reason, violations = refused(
        stubs.lifecycle.ActivateSim,
        lpb.ActivateSimRequest(
            request_id="",
            number="13800138000",
            subscriber_id="not-a-uuid",
            iccid="8986001234567890123",
            imsi="46000123",
            channel="",
            agent_id="",
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {f for f, _ in violations} == {"request_id", "number", "subscriber_id", "iccid", "imsi", "channel"}
    assert reason == "INVALID_ARGUMENT" and all(text for _, text in violations)
    assert app.reader.max_position() == before


def test_unknown_number_is_not_found_on_unary_and_streaming_calls(server) -> None:
    stubs, _ = server
    refused(
        stubs.lifecycle.SuspendNumber,
        lpb.SuspendNumberRequest(request_id="s", number=number(55), reason=1),
        grpc.StatusCode.NOT_FOUND,
    )
    with pytest.raises(grpc.RpcError) as e:
        list(stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=number(55))))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_occurred_at_out_of_order_is_invalid_argument_with_its_reason(server) -> None:
    stubs, _app = server
    msisdn = number(7)
    stubs.onboard(msisdn, seq=7)
    reason, violations = refused(
        stubs.lifecycle.SuspendNumber,
        lpb.SuspendNumberRequest(
            request_id="s1", number=msisdn, reason=1, occurred_at=ts(datetime(2025, 1, 1, tzinfo=UTC))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert reason == "OCCURRED_AT_OUT_OF_ORDER" and violations[0][0] == "occurred_at"


def test_a_request_id_reused_for_other_content_already_exists(server) -> None:
    stubs, app = server
    same = lpb.RegisterSubscriberRequest(request_id="same", full_name="Wang Wu", id_type=3, id_number="X-1")
    first = stubs.lifecycle.RegisterSubscriber(same)
    before = app.reader.max_position()
    assert stubs.lifecycle.RegisterSubscriber(same) == first
    reason, _ = refused(
        stubs.lifecycle.ProvisionNumbers,
        lpb.ProvisionNumbersRequest(request_id="same", numbers=[number(9)]),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert reason == "REQUEST_ID_REUSED"
    assert app.reader.max_position() == before
