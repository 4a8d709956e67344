"""The whole lifecycle over a real gRPC server on loopback with a real SQLite file."""

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
from tests.conftest import RESIDENT_DOB, RESIDENT_ID, imsi_for, new_iccid, number, resident_id

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


def test_full_lifecycle_with_every_refusal(server, clock) -> None:
    stubs, _ = server
    lc = stubs.lifecycle
    fp = grpc.StatusCode.FAILED_PRECONDITION
    msisdn = number(1)

    lc.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="prov", numbers=[msisdn, number(2)]))
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
    assert refused(lc.ActivateSim, activate, fp)[0] == "IDENTITY_NOT_VERIFIED"
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
    tenure1 = lc.ActivateSim(activate).tenure_id
    assert (
        refused(lc.ActivateSim, lpb.ActivateSimRequest(**{**_fields(activate), "request_id": "act-again"}), fp)[0]
        == "NUMBER_NOT_AVAILABLE"
    )
    # The same SIM cannot serve a second number.
    other = lpb.ActivateSimRequest(**{**_fields(activate), "request_id": "act-2", "number": number(2)})
    assert refused(lc.ActivateSim, other, fp)[0] == "ICCID_IN_USE"

    clock.advance(days=1)
    assert refused(lc.ResumeNumber, lpb.ResumeNumberRequest(request_id="res-0", number=msisdn), fp)[0] == (
        "NUMBER_NOT_SUSPENDED"
    )
    lc.SuspendNumber(
        lpb.SuspendNumberRequest(
            request_id="sus-1", number=msisdn, reason=ledger_pb2.SUSPENSION_REASON_LOST_SIM, note="reported lost"
        )
    )
    assert (
        refused(
            lc.SuspendNumber,
            lpb.SuspendNumberRequest(request_id="sus-2", number=msisdn, reason=ledger_pb2.SUSPENSION_REASON_FRAUD),
            fp,
        )[0]
        == "NUMBER_NOT_ACTIVE"
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

    # Erasure is refused while the subscriber still holds the number.
    assert (
        refused(
            lc.EraseSubscriberData,
            lpb.EraseSubscriberDataRequest(request_id="erase-0", subscriber_id=alice, legal_basis="PIPL art. 47"),
            fp,
        )[0]
        == "SUBSCRIBER_HAS_OPEN_TENURE"
    )

    clock.advance(days=30)
    disc = lc.DisconnectNumber(
        lpb.DisconnectNumberRequest(
            request_id="disc-1", number=msisdn, reason=ledger_pb2.DISCONNECT_REASON_SUBSCRIBER_REQUEST
        )
    )
    assert disc.tenure_id == tenure1
    assert disc.quarantine_until.ToDatetime(tzinfo=UTC) == datetime(2026, 5, 6, 9, 0, tzinfo=UTC)
    release = lpb.ReleaseNumberRequest(request_id="rel-1", number=msisdn)
    assert refused(lc.ReleaseNumber, release, fp)[0] == "QUARANTINE_NOT_ELAPSED"
    clock.advance(days=90)
    assert refused(lc.ReleaseNumber, lpb.ReleaseNumberRequest(request_id="rel-2", number=msisdn), fp)[0] == (
        "CLEARANCE_PENDING"
    )
    clearances = []
    for holder in ("crm", "billing", "voicemail"):
        clearances.append(
            lc.ConfirmDataCleared(
                lpb.ConfirmDataClearedRequest(
                    request_id=f"clr-{holder}",
                    number=msisdn,
                    tenure_id=tenure1,
                    holder=holder,
                    evidence_ref=f"{holder}-ticket",
                )
            ).clearance
        )
    assert clearances == [ledger_pb2.CLEARANCE_PENDING, ledger_pb2.CLEARANCE_PENDING, ledger_pb2.CLEARANCE_CLEARED]
    assert (
        refused(
            lc.ConfirmDataCleared,
            lpb.ConfirmDataClearedRequest(
                request_id="clr-crm-2", number=msisdn, tenure_id=tenure1, holder="crm", evidence_ref="x"
            ),
            fp,
        )[0]
        == "HOLDER_ALREADY_CONFIRMED"
    )
    lc.ReleaseNumber(lpb.ReleaseNumberRequest(request_id="rel-3", number=msisdn))
    assert refused(lc.ReleaseNumber, lpb.ReleaseNumberRequest(request_id="rel-4", number=msisdn), fp)[0] == (
        "NUMBER_NOT_QUARANTINED"
    )

    # Recycled to a new subscriber.
    bob, tenure2, _ = _reactivate(stubs, msisdn)
    assert tenure2 != tenure1
    lc.EraseSubscriberData(
        lpb.EraseSubscriberDataRequest(request_id="erase-1", subscriber_id=alice, legal_basis="PIPL art. 47")
    )
    assert (
        refused(
            lc.EraseSubscriberData,
            lpb.EraseSubscriberDataRequest(request_id="erase-2", subscriber_id=alice, legal_basis="again"),
            fp,
        )[0]
        == "SUBSCRIBER_ERASED"
    )

    history = [
        r.event
        for r in stubs.history.GetNumberHistory(
            hpb.GetNumberHistoryRequest(number=msisdn, include_personal_data=True, purpose="court order 2026/88")
        )
    ]
    types = [e.type for e in history]
    assert types[0] == "NumberProvisioned"
    assert types.count("NumberActivated") == 2 and "SubscriberPersonalDataErased" in types
    positions = [e.position for e in history]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    registered = [e for e in history if e.type == "SubscriberRegistered"]
    by_subscriber = {e.subscriber_id: e for e in registered}
    assert by_subscriber[alice].personal_data_state == ledger_pb2.PERSONAL_DATA_STATE_ERASED
    assert by_subscriber[alice].personal_data.full_name == ""
    assert by_subscriber[bob].personal_data_state == ledger_pb2.PERSONAL_DATA_STATE_DISCLOSED
    assert by_subscriber[bob].personal_data.full_name == "Bob Li"
    assert all(e.actor for e in history) and all(e.request_id for e in history)
    disconnected = next(e for e in history if e.type == "NumberDisconnected")
    assert disconnected.subscriber_id == alice
    assert disconnected.data["required_holders"] == ["crm", "billing", "voicemail"]

    # The disclosure of Bob's data (Alice's is erased) was itself recorded, with its purpose.
    plain = [r.event for r in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn))]
    reads = [e for e in plain if e.type == "AccessLogPersonalDataRead"]
    assert len(reads) == 1 and reads[0].data["purpose"] == "court order 2026/88"
    assert reads[0].stream_type == ledger_pb2.STREAM_TYPE_ACCESS_LOG and reads[0].actor
    # Without asking, personal data is withheld, and nothing more is recorded.
    assert {e.personal_data_state for e in plain if e.type == "SubscriberRegistered"} == {
        ledger_pb2.PERSONAL_DATA_STATE_ERASED,
        ledger_pb2.PERSONAL_DATA_STATE_WITHHELD,
    }

    # Who held it on a past day.
    past = stubs.history.GetNumberState(
        hpb.GetNumberStateRequest(number=msisdn, as_of=ts(datetime(2026, 1, 20, tzinfo=UTC)))
    ).number_state
    assert past.subscriber_id == alice and past.state == ledger_pb2.NUMBER_STATUS_ACTIVE
    quarantined = stubs.history.GetNumberState(
        hpb.GetNumberStateRequest(number=msisdn, as_of=ts(datetime(2026, 3, 1, tzinfo=UTC)))
    ).number_state
    assert quarantined.state == ledger_pb2.NUMBER_STATUS_QUARANTINED and quarantined.subscriber_id == ""
    now = stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=msisdn)).number_state
    assert now.subscriber_id == bob and now.tenure_count == 2


def _fields(message) -> dict:
    return {f.name: v for f, v in message.ListFields()}


def _reactivate(stubs, msisdn: str) -> tuple[str, str, str]:
    lc = stubs.lifecycle
    bob = lc.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(
            request_id="reg-bob", full_name="Bob Li", id_type=ledger_pb2.ID_TYPE_PASSPORT, id_number="E12345678"
        )
    ).subscriber_id
    lc.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id="ver-bob",
            subscriber_id=bob,
            method=ledger_pb2.VERIFICATION_METHOD_PASSPORT_CHECK,
            channel="online",
            agent_id="kyc-bot",
            evidence_ref="liveness-9",
        )
    )
    iccid = new_iccid()
    tenure = lc.ActivateSim(
        lpb.ActivateSimRequest(
            request_id="act-bob",
            number=msisdn,
            subscriber_id=bob,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="online",
            agent_id="kyc-bot",
        )
    ).tenure_id
    return bob, tenure, iccid


def test_identity_number_cap(server) -> None:
    stubs, _ = server
    lc = stubs.lifecycle
    numbers = [number(100 + i) for i in range(6)]
    lc.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=numbers))
    sid = lc.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(request_id="r", full_name="Cap Test", id_type=1, id_number=resident_id(3))
    ).subscriber_id
    lc.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id="v", subscriber_id=sid, method=1, channel="retail", agent_id="a", evidence_ref="e"
        )
    )
    for i, msisdn in enumerate(numbers):
        iccid = new_iccid()
        req = lpb.ActivateSimRequest(
            request_id=f"a{i}",
            number=msisdn,
            subscriber_id=sid,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="retail",
            agent_id="a",
        )
        if i < 5:
            lc.ActivateSim(req)
        else:
            assert refused(lc.ActivateSim, req, grpc.StatusCode.FAILED_PRECONDITION)[0] == "IDENTITY_NUMBER_CAP"
    # A second registration of the same person counts against the same cap.
    twin = lc.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(request_id="r2", full_name="Cap Test", id_type=1, id_number=resident_id(3))
    ).subscriber_id
    lc.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id="v2", subscriber_id=twin, method=1, channel="retail", agent_id="a", evidence_ref="e"
        )
    )
    iccid = new_iccid()
    req = lpb.ActivateSimRequest(
        request_id="a-twin",
        number=numbers[5],
        subscriber_id=twin,
        iccid=iccid,
        imsi=imsi_for(iccid),
        channel="retail",
        agent_id="a",
    )
    assert refused(lc.ActivateSim, req, grpc.StatusCode.FAILED_PRECONDITION)[0] == "IDENTITY_NUMBER_CAP"
    lc.DisconnectNumber(lpb.DisconnectNumberRequest(request_id="d", number=numbers[0], reason=1))
    lc.ActivateSim(req)


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
    fields = {f for f, _ in violations}
    # agent_id may be empty: whether a channel needs one is policy (agent_channels), decided once the rest is valid
    assert fields == {"request_id", "number", "subscriber_id", "iccid", "imsi", "channel"}
    assert reason == "INVALID_ARGUMENT"
    _, violations = refused(
        stubs.lifecycle.RegisterSubscriber,
        lpb.RegisterSubscriberRequest(
            request_id="r", full_name="X", id_type=ledger_pb2.ID_TYPE_RESIDENT_ID_CARD, id_number="110105194912310021"
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert [f for f, _ in violations] == ["id_number"]
    _, violations = refused(
        stubs.lifecycle.RegisterSubscriber,
        lpb.RegisterSubscriberRequest(
            request_id="r", full_name="X", id_type=1, id_number=RESIDENT_ID, date_of_birth="1950-01-01"
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert [f for f, _ in violations] == ["date_of_birth"]
    _, violations = refused(
        stubs.lifecycle.SuspendNumber,
        lpb.SuspendNumberRequest(request_id="s", number=number(1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert [f for f, _ in violations] == ["reason"]
    assert app.reader.max_position() == before


def test_unknown_number_and_subscriber_are_not_found(server) -> None:
    stubs, _ = server
    refused(
        stubs.lifecycle.SuspendNumber,
        lpb.SuspendNumberRequest(request_id="s", number=number(55), reason=1),
        grpc.StatusCode.NOT_FOUND,
    )
    refused(
        stubs.lifecycle.VerifyIdentity,
        lpb.VerifyIdentityRequest(
            request_id="v",
            subscriber_id="6f1c2a52-4f55-4a43-9a4d-7d0b8e1f0a11",
            method=1,
            channel="retail",
            agent_id="a",
            evidence_ref="e",
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    with pytest.raises(grpc.RpcError) as e:
        list(stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=number(55))))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_occurred_at_rules(server, clock) -> None:
    stubs, _app = server
    msisdn = number(7)
    stubs.onboard(msisdn, seq=7)
    # Earlier than the number's last event.
    reason, violations = refused(
        stubs.lifecycle.SuspendNumber,
        lpb.SuspendNumberRequest(
            request_id="s1", number=msisdn, reason=1, occurred_at=ts(datetime(2025, 1, 1, tzinfo=UTC))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert reason == "OCCURRED_AT_OUT_OF_ORDER" and violations[0][0] == "occurred_at"
    # Too far in the future.
    reason, _ = refused(
        stubs.lifecycle.SuspendNumber,
        lpb.SuspendNumberRequest(
            request_id="s2", number=msisdn, reason=1, occurred_at=ts(datetime(2027, 1, 1, tzinfo=UTC))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert reason == "OCCURRED_AT_IN_FUTURE"
    # A caller-given time within the allowed window is recorded as given.
    when = clock.advance(hours=2)
    stubs.lifecycle.SuspendNumber(
        lpb.SuspendNumberRequest(request_id="s3", number=msisdn, reason=1, occurred_at=ts(when))
    )
    last = list(stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn)))[-1].event
    assert last.type == "NumberSuspended" and last.occurred_at.ToDatetime(tzinfo=UTC) == when


def test_request_id_retry_returns_the_first_result_and_other_content_is_refused(server) -> None:
    stubs, app = server
    first = stubs.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(request_id="same", full_name="Wang Wu", id_type=3, id_number="X-1")
    )
    before = app.reader.max_position()
    again = stubs.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(request_id="same", full_name="Wang Wu", id_type=3, id_number="X-1")
    )
    assert again == first
    assert app.reader.max_position() == before
    refused(
        stubs.lifecycle.RegisterSubscriber,
        lpb.RegisterSubscriberRequest(request_id="same", full_name="Wang Liu", id_type=3, id_number="X-1"),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    refused(
        stubs.lifecycle.ProvisionNumbers,
        lpb.ProvisionNumbersRequest(request_id="same", numbers=[number(9)]),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert app.reader.max_position() == before


def test_provisioning_skips_known_numbers(server) -> None:
    stubs, _ = server
    first = stubs.lifecycle.ProvisionNumbers(
        lpb.ProvisionNumbersRequest(request_id="p1", numbers=[number(1), number(2)])
    )
    assert first.provisioned_count == 2
    second = stubs.lifecycle.ProvisionNumbers(
        lpb.ProvisionNumbersRequest(request_id="p2", numbers=[number(2), number(3), number(3)])
    )
    assert second.provisioned_count == 1 and list(second.already_provisioned) == [number(2)]
    assert second.position > first.position


def test_override_release_records_a_violation(server, clock) -> None:
    stubs, _ = server
    msisdn = number(8)
    _, tenure, _ = stubs.onboard(msisdn, seq=8)
    stubs.lifecycle.DisconnectNumber(lpb.DisconnectNumberRequest(request_id="d", number=msisdn, reason=3))
    stubs.lifecycle.ReleaseNumber(
        lpb.ReleaseNumberRequest(request_id="r", number=msisdn, override_reason="regulator order 2026/17")
    )
    history = [r.event for r in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn))]
    released = history[-1]
    assert released.type == "NumberReleased"
    assert released.data["override_reason"] == "regulator order 2026/17"
    assert released.data["clearance_overridden"] is True
    assert released.data["tenure_id"] == tenure
