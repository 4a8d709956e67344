"""Porting, SIM swap answers, future dates and self-service over a real server, on both stores.

Each row of the porting table in docs/api.md ("Porting") is a test here (``test_row<N>_...``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from projections.db import ViewsDatabase
from projections.people import PeopleQueries
from projections.queries import ReadModels
from tests.conftest import FakeClock, imsi_for, new_iccid, number, resident_id
from tests.e2e.test_lifecycle_grpc import details
from tests.e2e.test_recycling_grpc import History, at, check

STORES = ("sqlite", "postgres")
CHANGED, NOT_CHANGED, NO_DATA = (
    ledger_pb2.CHECK_STATUS_CHANGED,
    ledger_pb2.CHECK_STATUS_NOT_CHANGED,
    ledger_pb2.CHECK_STATUS_NO_DATA,
)
HOLDERS = ("crm", "billing", "voicemail")


@pytest.fixture
def clock() -> FakeClock:
    # The ledger's clock a little behind the wall clock, which the checks read for "today" and "now".
    return FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10))


def refused(call, request, code: grpc.StatusCode) -> tuple[str, list[tuple[str, str]]]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    assert caught.value.code() == code, caught.value.details()
    return details(caught.value)


def field_reasons(call, request) -> dict[str, str]:
    """The BadRequest field violations' machine-readable reasons of a refused call."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)
    status = rpc_status.from_call(caught.value)
    assert status is not None
    found = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.reason for v in bad.field_violations})
    return found


def ported_history(stubs, msisdn: str) -> History:
    """Held since 2023-01-10, ported out on 2024-05-01 09:00."""
    h = History(stubs)
    h.call("ProvisionNumbers", numbers=[msisdn], occurred_at=at("2023-01-01T08:00:00"))
    h.holder(msisdn, 1, "2023-01-10T09:00:00")
    h.call("PortOutNumber", number=msisdn, recipient_operator="other-mno", occurred_at=at("2024-05-01T09:00:00"))
    return h


def test_row1_ported_out_number_answers_no_data_with_the_port_time(server) -> None:
    stubs, _ = server
    msisdn = number(1)
    h = ported_history(stubs, msisdn)
    r = check(stubs, msisdn, "2023-06-01", min_position=h.last)
    assert (r.status, r.phone_number_changed) == (NO_DATA, False)
    assert r.no_data_reason == ledger_pb2.NO_DATA_REASON_PORTED_OUT
    assert r.ported_out_at.ToDatetime(tzinfo=UTC) == datetime(2024, 5, 1, 9, tzinfo=UTC)
    assert not r.HasField("last_disconnected_at")  # porting is no change of holder
    batch = stubs.recycling.BatchCheck(
        iter([rpb.BatchCheckRequest(queries=[ledger_pb2.CheckQuery(number=msisdn, since_date="2023-06-01")])])
    )
    assert list(next(batch).results) == [r]
    state = stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=msisdn)).number_state
    assert state.state == ledger_pb2.NUMBER_STATUS_PORTED_OUT
    history = stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn), timeout=10)
    ported = [r.event for r in history if r.event.type == "NumberPortedOut"]
    assert [(e.data["recipient_operator"], e.subscriber_id != "") for e in ported] == [("other-mno", True)]
    feed = stubs.history.StreamEvents(hpb.StreamEventsRequest(from_position=1), timeout=3)
    found = next(item.event for item in feed if item.event.type == "NumberPortedOut")
    feed.cancel()
    assert found.number == msisdn


def test_row2_disconnection_while_served_here_stays_changed_after_the_port(server) -> None:
    stubs, _ = server
    msisdn = number(2)
    h = History(stubs)
    h.call("ProvisionNumbers", numbers=[msisdn], occurred_at=at("2023-01-01T08:00:00"))
    h.holder(msisdn, 1, "2023-01-10T09:00:00")
    h.call("DisconnectNumber", number=msisdn, reason=1, occurred_at=at("2023-03-01T09:00:00"))
    h.call("ReleaseNumber", number=msisdn, override_reason="test", occurred_at=at("2023-05-01T00:00:00"))
    h.holder(msisdn, 2, "2023-06-01T09:00:00")
    h.call("PortOutNumber", number=msisdn, recipient_operator="other-mno", occurred_at=at("2024-05-01T09:00:00"))
    r = check(stubs, msisdn, "2023-02-01", min_position=h.last)
    assert r.status == CHANGED and r.last_disconnected_at.ToDatetime(tzinfo=UTC) == datetime(2023, 3, 1, 9, tzinfo=UTC)
    assert r.HasField("ported_out_at") and r.no_data_reason == ledger_pb2.NO_DATA_REASON_UNSPECIFIED
    assert check(stubs, msisdn, "2023-07-01").status == NO_DATA


def test_row3_returned_number_changed_at_the_recipients_disconnection_and_is_released(server, clock) -> None:
    stubs, _ = server
    msisdn = number(3)
    h = ported_history(stubs, msisdn)
    r = h.call(
        "ReturnNumber", number=msisdn, disconnected_at=at("2024-09-01T00:00:00"), occurred_at=at("2024-09-10T00:00:00")
    )
    assert r.quarantine_until.ToDatetime(tzinfo=UTC) == datetime(2024, 11, 30, tzinfo=UTC)  # 90 days
    found = check(stubs, msisdn, "2023-06-01", min_position=h.last)
    assert found.status == CHANGED and found.last_disconnected_at.ToDatetime(tzinfo=UTC) == datetime(
        2024, 9, 1, tzinfo=UTC
    )
    assert found.clearance == ledger_pb2.CLEARANCE_PENDING and not found.HasField("ported_out_at")
    assert check(stubs, msisdn, "2024-10-01").status == CHANGED  # nobody holds it now
    clearance = stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=msisdn)).tenures
    assert [t.quarantine_until.ToDatetime(tzinfo=UTC) for t in clearance] == [datetime(2024, 11, 30, tzinfo=UTC)]
    for holder in HOLDERS:
        h.call("ConfirmDataCleared", number=msisdn, tenure_id=clearance[0].tenure_id, holder=holder, evidence_ref="x")
    h.call("ReleaseNumber", number=msisdn)
    state = stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=msisdn)).number_state
    assert state.state == ledger_pb2.NUMBER_STATUS_AVAILABLE


def test_row4_ported_in_number_has_records_from_the_port_in(server) -> None:
    stubs, _ = server
    msisdn = number(4)
    h = History(stubs)
    h.call("PortInNumber", number=msisdn, donor_operator="donor-mno", occurred_at=at("2024-03-01T09:00:00"))
    h.holder(msisdn, 4, "2024-03-01T10:00:00")
    assert check(stubs, msisdn, "2024-03-01", min_position=h.last).status == NOT_CHANGED
    before = check(stubs, msisdn, "2024-02-01")
    assert (before.status, before.no_data_reason) == (NO_DATA, ledger_pb2.NO_DATA_REASON_RECORDS_BEGIN_LATER)
    unknown = check(stubs, number(999), "2024-02-01")
    assert unknown.no_data_reason == ledger_pb2.NO_DATA_REASON_UNKNOWN_NUMBER


def test_row5_number_ported_back_in_starts_its_records_again(server) -> None:
    stubs, _ = server
    msisdn = number(5)
    h = ported_history(stubs, msisdn)
    h.call("PortInNumber", number=msisdn, donor_operator="other-mno", occurred_at=at("2024-07-01T09:00:00"))
    h.holder(msisdn, 5, "2024-07-01T10:00:00")
    assert check(stubs, msisdn, "2024-07-01", min_position=h.last).status == NOT_CHANGED
    assert check(stubs, msisdn, "2023-06-01").no_data_reason == ledger_pb2.NO_DATA_REASON_RECORDS_BEGIN_LATER


def test_row6_disconnection_on_record_after_the_date_is_changed_before_the_records(server) -> None:
    # Issue 18: provisioned 2023-03-01, disconnected 2024-05-10, a new holder from 2024-08-01.
    stubs, _ = server
    msisdn = number(6)
    h = History(stubs)
    h.call("ProvisionNumbers", numbers=[msisdn], occurred_at=at("2023-03-01T08:00:00"))
    h.holder(msisdn, 6, "2023-03-01T09:00:00")
    h.call("DisconnectNumber", number=msisdn, reason=1, occurred_at=at("2024-05-10T09:00:00"))
    h.call("ReleaseNumber", number=msisdn, override_reason="test", occurred_at=at("2024-07-31T00:00:00"))
    h.holder(msisdn, 7, "2024-08-01T09:00:00")
    r = check(stubs, msisdn, "2023-01-01", min_position=h.last)
    assert r.status == CHANGED and r.last_disconnected_at.ToDatetime(tzinfo=UTC) == datetime(2024, 5, 10, 9, tzinfo=UTC)


def test_row7_ported_out_number_is_never_released(server) -> None:
    stubs, _ = server
    msisdn = number(7)
    ported_history(stubs, msisdn)
    for override in ("", "ops"):
        reason, _ = refused(
            stubs.lifecycle.ReleaseNumber,
            lpb.ReleaseNumberRequest(request_id=stubs.rid(), number=msisdn, override_reason=override),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert reason == "NUMBER_PORTED_OUT"


def test_row8_disconnect_with_reason_ported_out_is_refused_naming_port_out(server) -> None:
    stubs, _ = server
    msisdn = number(8)
    stubs.onboard(msisdn, 8)
    reason, violations = refused(
        stubs.lifecycle.DisconnectNumber,
        lpb.DisconnectNumberRequest(
            request_id=stubs.rid(), number=msisdn, reason=ledger_pb2.DISCONNECT_REASON_PORTED_OUT
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert reason == "INVALID_ARGUMENT"
    assert violations == [("reason", "a port-out is recorded with PortOutNumber, not DisconnectNumber")]


def test_row9_port_out_opens_the_former_holders_clearance(server) -> None:
    stubs, _ = server
    msisdn = number(9)
    h = ported_history(stubs, msisdn)
    check(stubs, msisdn, "2024-01-01", min_position=h.last)  # GetClearance has no min_position: wait here
    (tenure,) = stubs.recycling.GetClearance(rpb.GetClearanceRequest(number=msisdn)).tenures
    assert list(tenure.outstanding_holders) == list(HOLDERS) and not tenure.HasField("quarantine_until")
    response = h.call("ConfirmDataCleared", number=msisdn, tenure_id=tenure.tenure_id, holder="crm", evidence_ref="x")
    assert response.clearance == ledger_pb2.CLEARANCE_PENDING


def test_port_commands_refuse_bad_input_and_wrong_states(server) -> None:
    stubs, _ = server
    lc = stubs.lifecycle
    _, violations = refused(
        lc.PortOutNumber,
        lpb.PortOutNumberRequest(request_id="", number="1", recipient_operator=""),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert {f for f, _ in violations} == {"request_id", "number", "recipient_operator"}
    _, violations = refused(
        lc.ReturnNumber, lpb.ReturnNumberRequest(request_id="r", number=number(10)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert violations == [("disconnected_at", "is required")]
    stubs.onboard(number(10), 10)
    reason, _ = refused(
        lc.ReturnNumber,
        lpb.ReturnNumberRequest(request_id="r", number=number(10), disconnected_at=Timestamp(seconds=1_700_000_000)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "NUMBER_NOT_PORTED_OUT"
    reason, _ = refused(
        lc.PortInNumber,
        lpb.PortInNumberRequest(request_id="pi", number=number(10), donor_operator="d"),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert reason == "NUMBER_NOT_PORTED_OUT"
    reason, _ = refused(
        lc.PortOutNumber,
        lpb.PortOutNumberRequest(request_id="po", number=number(11), recipient_operator="x"),
        grpc.StatusCode.NOT_FOUND,
    )


def test_port_commands_are_imported_like_their_rpcs(server) -> None:
    stubs, _ = server
    msisdn = number(12)
    stubs.onboard(msisdn, 12)
    commands = [
        lpb.ImportCommand(
            port_out_number=lpb.PortOutNumberRequest(request_id="i1", number=msisdn, recipient_operator="r")
        ),
        lpb.ImportCommand(
            return_number=lpb.ReturnNumberRequest(
                request_id="i2", number=msisdn, disconnected_at=at("2020-01-01T00:00:00")
            )
        ),
        lpb.ImportCommand(
            port_in_number=lpb.PortInNumberRequest(request_id="i3", number=number(13), donor_operator="d")
        ),
    ]
    (response,) = stubs.lifecycle.ImportCommands(iter([lpb.ImportCommandsRequest(commands=commands)]))
    results = list(response.results)
    assert results[0].WhichOneof("response") == "port_out_number" and results[0].port_out_number.tenure_id
    assert results[1].error.reason == "INVALID_ARGUMENT"  # the recipient disconnected it before the port
    assert results[2].WhichOneof("response") == "port_in_number"


# -- dates ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [1, 365 * 900])
def test_since_date_after_today_is_out_of_range(server, offset: int) -> None:
    stubs, _ = server
    later = (datetime.now(UTC).date() + timedelta(days=offset + 1)).isoformat()  # after today in every zone
    for since in (later, "9999-12-31"):
        reason, violations = refused(
            stubs.recycling.CheckNumber,
            rpb.CheckNumberRequest(number=number(1), since_date=since),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert reason == "OUT_OF_RANGE" and [f for f, _ in violations] == ["since_date"]
        request = rpb.CheckNumberRequest(number=number(1), since_date=since)
        assert field_reasons(stubs.recycling.CheckNumber, request) == {"since_date": "OUT_OF_RANGE"}
    mixed = rpb.CheckNumberRequest(number="12", since_date="9999-12-31")  # another violation beside it
    assert refused(stubs.recycling.CheckNumber, mixed, grpc.StatusCode.INVALID_ARGUMENT)[0] == "INVALID_ARGUMENT"
    assert field_reasons(stubs.recycling.CheckNumber, mixed) == {"number": "", "since_date": "OUT_OF_RANGE"}
    today = datetime.now(UTC).date().isoformat()
    assert check(stubs, number(1), today).status == NO_DATA


def test_batch_check_refuses_a_future_date_without_internal(server) -> None:
    stubs, _ = server
    queries = [
        ledger_pb2.CheckQuery(number=number(1), since_date="2024-01-01"),
        ledger_pb2.CheckQuery(number=number(1), since_date="9999-12-31"),
    ]
    with pytest.raises(grpc.RpcError) as caught:
        list(stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=queries)]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, violations = details(caught.value)
    assert reason == "OUT_OF_RANGE" and [f for f, _ in violations] == ["queries[1].since_date"]
    first = [ledger_pb2.CheckQuery(number=number(1), since_date=date.min.isoformat())]
    (response,) = stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=first)]), timeout=10)
    assert response.results[0].status == NO_DATA


# -- SIM swap -------------------------------------------------------------------------------------------------


def test_sim_swap_answers_count_the_first_activation_and_later_swaps(server, clock) -> None:
    stubs, _ = server
    msisdn = number(20)
    provisioned = clock.now()
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=stubs.rid(), numbers=[msisdn]))
    got = stubs.recycling.GetSimSwap(rpb.GetSimSwapRequest(number=msisdn, min_position=1), timeout=10)
    assert not got.HasField("latest_sim_change_at")
    sid, _, _ = stubs.onboard(number(21), 21)  # another number: its activation is not this one's
    clock.advance(minutes=1)
    iccid = new_iccid()
    activated = stubs.lifecycle.ActivateSim(
        lpb.ActivateSimRequest(
            request_id=stubs.rid(),
            number=msisdn,
            subscriber_id=sid,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="app",
        )
    )
    got = stubs.recycling.GetSimSwap(rpb.GetSimSwapRequest(number=msisdn, min_position=activated.position), timeout=10)
    assert got.latest_sim_change_at.ToDatetime(tzinfo=UTC) == clock.now()  # the first SIM counts (SIM Swap v2)
    assert got.monitored_since.ToDatetime(tzinfo=UTC) == provisioned and got.as_of_position >= activated.position
    swap = stubs.recycling.CheckSimSwap
    assert swap(rpb.CheckSimSwapRequest(number=msisdn, max_age_hours=1, min_position=activated.position)).swapped
    clock.advance(minutes=2)
    new = new_iccid()
    swapped = stubs.lifecycle.SwapSim(
        lpb.SwapSimRequest(
            request_id=stubs.rid(), number=msisdn, new_iccid=new, new_imsi=imsi_for(new), reason=1, channel="app"
        )
    )
    got = stubs.recycling.GetSimSwap(rpb.GetSimSwapRequest(number=msisdn, min_position=swapped.position), timeout=10)
    assert got.latest_sim_change_at.ToDatetime(tzinfo=UTC) == clock.now()
    assert swap(rpb.CheckSimSwapRequest(number=msisdn)).swapped  # maxAge defaults to 240 hours
    assert swap(rpb.CheckSimSwapRequest(number=msisdn, max_age_hours=2400)).swapped


def test_sim_swap_of_an_old_change_is_not_within_the_period(server) -> None:
    stubs, _ = server
    msisdn = number(22)
    h = History(stubs)
    h.call("ProvisionNumbers", numbers=[msisdn], occurred_at=at("2024-01-01T08:00:00"))
    h.holder(msisdn, 22, "2024-01-02T09:00:00")
    r = stubs.recycling.CheckSimSwap(rpb.CheckSimSwapRequest(number=msisdn, max_age_hours=2400, min_position=h.last))
    assert not r.swapped and r.as_of_position >= h.last
    got = stubs.recycling.GetSimSwap(rpb.GetSimSwapRequest(number=msisdn))
    assert got.latest_sim_change_at.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 2, 9, tzinfo=UTC)


def test_sim_swap_refusals(server) -> None:
    stubs, _ = server
    for hours in (-1, 2401, 2**31 - 1):
        reason, violations = refused(
            stubs.recycling.CheckSimSwap,
            rpb.CheckSimSwapRequest(number=number(30), max_age_hours=hours),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert reason == "OUT_OF_RANGE" and [f for f, _ in violations] == ["max_age_hours"]
    _, violations = refused(
        stubs.recycling.GetSimSwap, rpb.GetSimSwapRequest(number="12"), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert [f for f, _ in violations] == ["number"]
    refused(stubs.recycling.GetSimSwap, rpb.GetSimSwapRequest(number=number(30)), grpc.StatusCode.NOT_FOUND)
    h = ported_history(stubs, number(31))
    for call, request in (
        (stubs.recycling.GetSimSwap, rpb.GetSimSwapRequest(number=number(31), min_position=h.last)),
        (stubs.recycling.CheckSimSwap, rpb.CheckSimSwapRequest(number=number(31), max_age_hours=24)),
    ):
        reason, _ = refused(call, request, grpc.StatusCode.FAILED_PRECONDITION)
        assert reason == "NUMBER_PORTED_OUT"
    back = h.call("ReturnNumber", number=number(31), disconnected_at=at("2024-06-01T00:00:00"))
    got = stubs.recycling.GetSimSwap(rpb.GetSimSwapRequest(number=number(31), min_position=back.position))
    assert got.latest_sim_change_at.ToDatetime(tzinfo=UTC) == datetime(2023, 1, 10, 9, tzinfo=UTC)  # ours again


# -- self-service ---------------------------------------------------------------------------------------------


def test_self_service_needs_no_agent_and_the_store_does(server, settings) -> None:
    stubs, _ = server
    lc = stubs.lifecycle
    sid = lc.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(
            request_id=stubs.rid(), full_name="Self Service", id_type=1, id_number=resident_id(40)
        )
    ).subscriber_id
    lc.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id=stubs.rid(),
            subscriber_id=sid,
            method=ledger_pb2.VERIFICATION_METHOD_ONLINE_PHOTO_LIVENESS,
            channel="app",
            evidence_ref="liveness-1",
        )
    )
    lc.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=stubs.rid(), numbers=[number(40), number(41)]))
    iccid = new_iccid()
    activated = lc.ActivateSim(
        lpb.ActivateSimRequest(
            request_id=stubs.rid(),
            number=number(40),
            subscriber_id=sid,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="app",
        )
    )
    other = new_iccid()
    _, violations = refused(
        lc.ActivateSim,
        lpb.ActivateSimRequest(
            request_id=stubs.rid(),
            number=number(41),
            subscriber_id=sid,
            iccid=other,
            imsi=imsi_for(other),
            channel="retail",
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violations == [("agent_id", "is required on channel 'retail' (policy agent_channels)")]
    assert stubs.projector.wait_for(activated.position, 10)
    read_models = ReadModels(ViewsDatabase.for_store(settings.store))
    try:
        assert [a for a in PeopleQueries(read_models).agents() if a["channel"] == "app"] == []  # no agent to rank
        (app_channel,) = [c for c in PeopleQueries(read_models).channel_rates() if c["channel"] == "app"]
        assert (app_channel["verifications"], app_channel["activations"], app_channel["in_service"]) == (1, 1, 1)
    finally:
        read_models.close()


def test_recycling_check_skips_future_rows_and_writes_the_port(server, tmp_path) -> None:
    import csv

    from scripts import recycling_check

    stubs, _ = server
    msisdn = number(50)
    h = ported_history(stubs, msisdn)
    check(stubs, msisdn, "2024-01-01", min_position=h.last)
    tomorrow = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    source = tmp_path / "in.csv"
    source.write_text(f"number,since_date\n{msisdn},2023-06-01\n{msisdn},{tomorrow}\n{number(51)},2024-01-01\n")
    out = tmp_path / "out.csv"
    code = recycling_check.main([str(source), "-o", str(out), "--target", stubs.target, "--no-progress"])
    assert code == 1  # a row was skipped
    rows = list(csv.DictReader(out.open()))
    assert [(r["status"], r["no_data_reason"], r["ported_out_at"][:10]) for r in rows] == [
        ("NO_DATA", "PORTED_OUT", "2024-05-01"),
        ("NO_DATA", "UNKNOWN_NUMBER", ""),
    ]


def test_batch_check_sim_swap_answers_each_number_in_order(server, clock) -> None:
    stubs, _ = server
    fresh, old, gone = number(60), number(61), number(62)
    h = History(stubs)
    h.call("ProvisionNumbers", numbers=[old, gone], occurred_at=at("2024-01-01T08:00:00"))
    h.holder(old, 61, "2024-01-02T09:00:00")
    h.holder(gone, 62, "2024-01-02T09:00:00")
    h.call("PortOutNumber", number=gone, recipient_operator="other-mno", occurred_at=at("2024-03-01T09:00:00"))
    stubs.onboard(fresh, 60)  # activated now (the ledger's clock)
    check(
        stubs,
        fresh,
        "2024-01-01",
        min_position=stubs.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(request_id=stubs.rid(), numbers=[number(63)])
        ).position,
    )
    queries = [
        rpb.SimSwapQuery(number=fresh, max_age_hours=1),
        rpb.SimSwapQuery(number=old),
        rpb.SimSwapQuery(number=gone, max_age_hours=24),
        rpb.SimSwapQuery(number=number(64), max_age_hours=24),
    ]
    (response,) = stubs.recycling.BatchCheckSimSwap(iter([rpb.BatchCheckSimSwapRequest(queries=queries)]), timeout=10)
    assert [(r.number, r.answer, r.swapped) for r in response.results] == [
        (fresh, rpb.SIM_SWAP_ANSWER_ANSWERED, True),
        (old, rpb.SIM_SWAP_ANSWER_ANSWERED, False),
        (gone, rpb.SIM_SWAP_ANSWER_PORTED_OUT, False),
        (number(64), rpb.SIM_SWAP_ANSWER_UNKNOWN_NUMBER, False),
    ]
    assert response.results[1].latest_sim_change_at.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 2, 9, tzinfo=UTC)
    single = stubs.recycling.CheckSimSwap(rpb.CheckSimSwapRequest(number=fresh, max_age_hours=1))
    assert single.swapped and response.as_of_position >= h.last
    bad = [rpb.SimSwapQuery(number=fresh, max_age_hours=2401)]
    with pytest.raises(grpc.RpcError) as caught:
        list(stubs.recycling.BatchCheckSimSwap(iter([rpb.BatchCheckSimSwapRequest(queries=bad)]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value) == ("OUT_OF_RANGE", [("queries[0].max_age_hours", "must be 1 to 2400 hours")])
