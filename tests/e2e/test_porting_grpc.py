"""Porting, SIM swap answers and future dates over a real server, on both stores: each RPC once and each
refusal's status and reason. The rows of the porting table in docs/api.md ("Porting") are
tests/integration/test_answers.py (``test_row<N>_...``) and tests/unit/test_lifecycle_requests.py; the
dates' and maxAge's ranges are tests/unit/test_answer_requests.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import FakeClock, imsi_for, new_iccid, number
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
    # What the history, the state and the feed say of a port: tests/unit/test_lifecycle_requests.py.


def test_return_and_port_in_over_the_wire(server) -> None:
    stubs, _ = server
    msisdn = number(3)
    h = ported_history(stubs, msisdn)
    r = h.call(
        "ReturnNumber", number=msisdn, disconnected_at=at("2024-09-01T00:00:00"), occurred_at=at("2024-09-10T00:00:00")
    )
    assert r.quarantine_until.ToDatetime(tzinfo=UTC) == datetime(2024, 11, 30, tzinfo=UTC)  # 90 days
    assert r.position == h.last
    ported_in = h.call("PortInNumber", number=number(4), donor_operator="d", occurred_at=at("2024-03-01T09:00:00"))
    assert ported_in.position == h.last > r.position
    state = stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=number(4))).number_state
    assert state.state == ledger_pb2.NUMBER_STATUS_AVAILABLE
    # What checks answer of returned and ported-in numbers: tests/integration/test_answers.py (rows 3 to 5).


# -- dates ----------------------------------------------------------------------------------------------------


def test_since_date_after_today_is_out_of_range(server) -> None:
    stubs, _ = server
    later = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()  # after today in every zone
    reason, violations = refused(
        stubs.recycling.CheckNumber,
        rpb.CheckNumberRequest(number=number(1), since_date=later),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert reason == "OUT_OF_RANGE" and [f for f, _ in violations] == ["since_date"]
    request = rpb.CheckNumberRequest(number=number(1), since_date=later)
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


def test_sim_swap_rpcs_answer_and_refuse_on_the_wire(server, clock) -> None:
    stubs, _ = server
    msisdn = number(20)
    provisioned = clock.now()
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=stubs.rid(), numbers=[msisdn]))
    sid, _, _ = stubs.onboard(number(21), 21)
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
    checked = stubs.recycling.CheckSimSwap(rpb.CheckSimSwapRequest(number=msisdn), timeout=10)
    assert checked.swapped and checked.as_of_position >= activated.position  # maxAge defaults to 240 hours

    reason, violations = refused(
        stubs.recycling.CheckSimSwap,
        rpb.CheckSimSwapRequest(number=number(30), max_age_hours=2401),
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


def test_batch_check_sim_swap_answers_each_number_in_order(server) -> None:
    stubs, _ = server
    fresh = number(60)
    stubs.onboard(fresh, 60)  # activated now (the ledger's clock)
    queries = [rpb.SimSwapQuery(number=fresh, max_age_hours=1), rpb.SimSwapQuery(number=number(64))]
    (response,) = stubs.recycling.BatchCheckSimSwap(iter([rpb.BatchCheckSimSwapRequest(queries=queries)]), timeout=10)
    assert [(r.number, r.answer, r.swapped) for r in response.results] == [
        (fresh, rpb.SIM_SWAP_ANSWER_ANSWERED, True),
        (number(64), rpb.SIM_SWAP_ANSWER_UNKNOWN_NUMBER, False),
    ]
    assert response.results[0].HasField("latest_sim_change_at") and response.as_of_position > 0
    bad = [rpb.SimSwapQuery(number=fresh, max_age_hours=2401)]
    with pytest.raises(grpc.RpcError) as caught:
        list(stubs.recycling.BatchCheckSimSwap(iter([rpb.BatchCheckSimSwapRequest(queries=bad)]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value) == ("OUT_OF_RANGE", [("queries[0].max_age_hours", "must be 1 to 2400 hours")])


def test_batch_check_sim_swap_parses_only_the_numbers_its_view_does_not_hold(server, monkeypatch) -> None:
    # A number the view holds was validated when it was provisioned: a batch of them costs no parse. One in
    # another form is answered under its E.164 form; one that is no number is named, and nothing answered.
    from ledger.domain import identifiers

    stubs, _ = server
    held = number(70)
    stubs.onboard(held, 70)
    parsed: list[str] = []
    parse = identifiers.parse_msisdn
    monkeypatch.setattr(identifiers, "parse_msisdn", lambda text: parsed.append(text) or parse(text))
    spaced = "+86 138 0000 0070"
    queries = [rpb.SimSwapQuery(number=n) for n in (held, spaced, number(71), held)]
    (response,) = stubs.recycling.BatchCheckSimSwap(iter([rpb.BatchCheckSimSwapRequest(queries=queries)]), timeout=10)
    assert [(r.number, r.answer) for r in response.results] == [
        (held, rpb.SIM_SWAP_ANSWER_ANSWERED),
        (held, rpb.SIM_SWAP_ANSWER_ANSWERED),
        (number(71), rpb.SIM_SWAP_ANSWER_UNKNOWN_NUMBER),
        (held, rpb.SIM_SWAP_ANSWER_ANSWERED),
    ]
    assert parsed == [spaced, number(71)]
    bad = [rpb.SimSwapQuery(number=held), rpb.SimSwapQuery(number="+86138"), rpb.SimSwapQuery(number="x")]
    with pytest.raises(grpc.RpcError) as caught:
        list(stubs.recycling.BatchCheckSimSwap(iter([rpb.BatchCheckSimSwapRequest(queries=bad)]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in details(caught.value)[1]] == ["queries[1].number", "queries[2].number"]
    # With an hours violation too, every violation is named, the numbers' first.
    bad[0].max_age_hours = 2401
    with pytest.raises(grpc.RpcError) as caught:
        list(stubs.recycling.BatchCheckSimSwap(iter([rpb.BatchCheckSimSwapRequest(queries=bad)]), timeout=10))
    assert [field for field, _ in details(caught.value)[1]] == [
        "queries[1].number",
        "queries[2].number",
        "queries[0].max_age_hours",
    ]
