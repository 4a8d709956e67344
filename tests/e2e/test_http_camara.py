"""The CAMARA routes of the HTTP port over a real server and a real HTTP client: the scenarios of the public
Number Recycling v0.2 and SIM Swap v2 test definitions the ledger can express (status, code, x-correlator),
and the DESIGN's identifier and body rules."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import imsi_for, new_iccid, number, running_server
from tests.e2e.test_porting_grpc import ported_history
from tests.e2e.test_recycling_grpc import History, at

STORES = ("sqlite", "postgres")
NR = "/number-recycling/v0.2/check"
RETRIEVE, CHECK = "/sim-swap/v2/retrieve-date", "/sim-swap/v2/check"
NOW = datetime(2027, 1, 10, 12, tzinfo=UTC)


@pytest.fixture
def http(settings, clock):
    """The production server with its HTTP port; yields (stubs, client)."""
    clock.t = NOW
    for stubs, _app in running_server(dataclasses.replace(settings, http_listen="127.0.0.1:0"), clock):
        with httpx.Client(base_url=stubs.http, timeout=10) as client:
            yield stubs, client


def settle(stubs, position: int) -> None:
    """Wait until every read model has applied ``position`` (the CAMARA routes do not wait)."""
    deadline = time.monotonic() + 30
    while stubs.projector.position < position:
        assert time.monotonic() < deadline, "the read models did not catch up"
        time.sleep(0.02)


def post(client: httpx.Client, path: str, body: object, correlator: str | None = None) -> httpx.Response:
    correlator = correlator or str(uuid.uuid4())
    response = client.post(path, json=body, headers={"x-correlator": correlator})
    assert response.headers["content-type"] == "application/json"
    assert response.headers.get("x-correlator") == correlator  # echoed on every answer, errors too
    return response


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["code"]) == (status, code) and body["message"], body


@pytest.fixture
def recycled(http):
    """Held by A from 2026-01-03, disconnected 2026-03-01, released, held by B from 2026-07-01."""
    stubs, client = http
    h = History(stubs)
    msisdn = number(1)
    h.call("ProvisionNumbers", numbers=[msisdn], occurred_at=at("2026-01-01T08:00:00"))
    _, first = h.holder(msisdn, 1, "2026-01-03T10:00:00")
    h.call("DisconnectNumber", number=msisdn, reason=1, occurred_at=at("2026-03-01T12:00:00"))
    for holder in ("crm", "billing", "voicemail"):
        h.call("ConfirmDataCleared", number=msisdn, tenure_id=first, holder=holder, evidence_ref="t",
               occurred_at=at("2026-03-05T00:00:00"))  # fmt: skip
    h.call("ReleaseNumber", number=msisdn, occurred_at=at("2026-06-01T00:00:00"))
    h.holder(msisdn, 2, "2026-07-01T09:30:00")
    settle(stubs, h.last)
    return stubs, client, msisdn


def test_number_recycling_success_scenarios(recycled) -> None:
    _, client, msisdn = recycled
    # Number_Recycling_01: the date the current holder signed (and any later date): not recycled.
    for day in ("2026-07-01", "2026-12-31", NOW.date().isoformat()):
        r = post(client, NR, {"phoneNumber": msisdn, "specifiedDate": day})
        assert r.status_code == 200 and r.json() == {"phoneNumberRecycled": False}
    # Number_Recycling_02: the date A signed, A cancelled and B holds it now: recycled; so is a day of the gap.
    for day in ("2026-01-03", "2026-02-01", "2026-03-01", "2026-06-15"):
        r = post(client, NR, {"phoneNumber": msisdn, "specifiedDate": day})
        assert r.status_code == 200 and r.json() == {"phoneNumberRecycled": True}


def test_number_recycling_error_scenarios(recycled) -> None:
    stubs, client, msisdn = recycled
    # 400.01: specifiedDate not a calendar date.
    for day in ("2026-13-01", "20260101", "2026/01/01", "yesterday", 20260101, None):
        refused(post(client, NR, {"phoneNumber": msisdn, "specifiedDate": day}), 400, "INVALID_ARGUMENT")
    # 400.02: phoneNumber not fitting the schema.
    for bad in ("8613800000001", "+0861380000000", "+86 138 0000 0001", "+86138000000012345", 8613800000001):
        refused(post(client, NR, {"phoneNumber": bad, "specifiedDate": "2026-07-01"}), 400, "INVALID_ARGUMENT")
    # 422.02: no identifier (2-legged access): the body is otherwise valid.
    refused(post(client, NR, {"specifiedDate": "2026-07-01"}), 422, "MISSING_IDENTIFIER")
    # A missing required field or a malformed body is 400 before any identifier rule.
    refused(post(client, NR, {}), 400, "INVALID_ARGUMENT")
    refused(post(client, NR, {"phoneNumber": msisdn}), 400, "INVALID_ARGUMENT")
    refused(post(client, NR, {"specifiedDate": "2026-13-01"}), 400, "INVALID_ARGUMENT")
    refused(post(client, NR, ["2026-07-01"]), 400, "INVALID_ARGUMENT")
    r = client.post(NR, content=b"{not json", headers={"x-correlator": "c1"})
    assert r.headers["x-correlator"] == "c1"
    refused(r, 400, "INVALID_ARGUMENT")
    # Strict bodies: an unknown property is refused.
    refused(post(client, NR, {"phoneNumber": msisdn, "specifiedDate": "2026-07-01", "x": 1}), 400, "INVALID_ARGUMENT")
    # A number that fits the pattern but is not one this ledger knows or can hold: 404.
    for unknown in (number(999), "+12345"):
        refused(post(client, NR, {"phoneNumber": unknown, "specifiedDate": "2026-07-01"}), 404, "IDENTIFIER_NOT_FOUND")
    # A date after today, or before the ledger's records of the number begin: OUT_OF_RANGE.
    tomorrow = (NOW + timedelta(days=1)).date().isoformat()
    refused(post(client, NR, {"phoneNumber": msisdn, "specifiedDate": tomorrow}), 400, "OUT_OF_RANGE")
    h = History(stubs)
    h.call("ProvisionNumbers", numbers=[number(2)], occurred_at=at("2026-05-01T08:00:00"))
    h.holder(number(2), 3, "2026-05-02T08:00:00")
    ported = ported_history(stubs, number(3))
    settle(stubs, max(h.last, ported.last))
    refused(post(client, NR, {"phoneNumber": number(2), "specifiedDate": "2026-04-01"}), 400, "OUT_OF_RANGE")
    # Ported out: another operator's number now.
    refused(post(client, NR, {"phoneNumber": number(3), "specifiedDate": "2024-06-01"}), 404, "IDENTIFIER_NOT_FOUND")


def test_x_correlator_is_checked_and_never_echoed_when_bad(recycled) -> None:
    _, client, msisdn = recycled
    body = {"phoneNumber": msisdn, "specifiedDate": "2026-07-01"}
    for good in ("", "a" * 256, "abc-DEF_1:2;3./<x>{y}"):
        r = client.post(NR, json=body, headers={"x-correlator": good})
        assert r.status_code == 200 and r.headers["x-correlator"] == good
    for bad in ("a" * 257, "has space", "quote'", "a\\b"):
        r = client.post(NR, json=body, headers={"x-correlator": bad})
        refused(r, 400, "INVALID_ARGUMENT")
        assert "x-correlator" not in r.headers
    assert "x-correlator" not in client.post(NR, json=body).headers  # none sent, none echoed
    # A path or method not served: CAMARA's error format, the correlator echoed.
    r = client.get(NR, headers={"x-correlator": "c-9"})
    assert r.headers["x-correlator"] == "c-9" and r.headers["allow"] == "POST"
    refused(r, 405, "METHOD_NOT_ALLOWED")
    refused(client.post("/number-recycling/v9/check", json=body), 404, "NOT_FOUND")


def test_sim_swap_scenarios(http, clock) -> None:
    stubs, client = http
    h = History(stubs)
    swapped, never, idle = number(10), number(11), number(12)
    h.call("ProvisionNumbers", numbers=[swapped, never, idle], occurred_at=at("2026-01-01T08:00:00"))
    h.holder(swapped, 10, "2026-02-01T08:00:00")
    h.holder(never, 11, "2026-02-01T08:00:00")  # activated long before the 240 hours
    new = new_iccid()
    swap_at = NOW - timedelta(hours=100)
    stubs.lifecycle.SwapSim(
        lpb.SwapSimRequest(request_id=stubs.rid(), number=swapped, new_iccid=new, new_imsi=imsi_for(new), reason=1,
                           channel="app", occurred_at=at(swap_at.replace(tzinfo=None).isoformat()))
    )  # fmt: skip
    ported = ported_history(stubs, number(13))
    settle(stubs, max(ported.last, stubs.lifecycle.ProvisionNumbers(
        lpb.ProvisionNumbersRequest(request_id=stubs.rid(), numbers=[number(14)])).position))  # fmt: skip
    # check_sim_swap_1/2: a swap in the last 240 hours, maxAge not given.
    r = post(client, CHECK, {"phoneNumber": swapped})
    assert r.status_code == 200 and r.json() == {"swapped": True}
    # check_sim_swap_3: maxAge at or beyond the hours since the swap.
    for hours in (100, 120, 260, 2400):
        assert post(client, CHECK, {"phoneNumber": swapped, "maxAge": hours}).json() == {"swapped": True}
    # check_sim_swap_5: maxAge one hour short of the swap.
    assert post(client, CHECK, {"phoneNumber": swapped, "maxAge": 99}).json() == {"swapped": False}
    # check_sim_swap_4/6/7: never swapped, activated long ago.
    for body in ({"phoneNumber": never}, {"phoneNumber": never, "maxAge": 12}, {"phoneNumber": never, "maxAge": 260}):
        assert post(client, CHECK, body).json() == {"swapped": False}
    # retrieve-date: the swap's moment in RFC 3339; null (with the monitored days) when no SIM change is on record.
    r = post(client, RETRIEVE, {"phoneNumber": swapped})
    assert r.status_code == 200
    assert datetime.fromisoformat(r.json()["latestSimChange"]) == swap_at and r.json()["latestSimChange"].endswith("Z")
    assert post(client, RETRIEVE, {"phoneNumber": never}).json()["latestSimChange"].startswith("2026-02-01T08:00:00")
    assert post(client, RETRIEVE, {"phoneNumber": idle}).json() == {"latestSimChange": None, "monitoredPeriod": 374}
    for path in (CHECK, RETRIEVE):
        # check_sim_swap_10: no identifier.
        refused(post(client, path, {}), 422, "MISSING_IDENTIFIER")
        # 400.1: phoneNumber not fitting the schema.
        refused(post(client, path, {"phoneNumber": "0044"}), 400, "INVALID_ARGUMENT")
        refused(post(client, path, {"phoneNumber": swapped, "extra": True}), 400, "INVALID_ARGUMENT")
        # Unknown here, or ported out: 404.
        refused(post(client, path, {"phoneNumber": number(99)}), 404, "IDENTIFIER_NOT_FOUND")
        refused(post(client, path, {"phoneNumber": number(13)}), 404, "IDENTIFIER_NOT_FOUND")
    # 400.2: maxAge not an integer; outside 1..2400 (0 included): OUT_OF_RANGE.
    for bad in ("24", 1.5, True, None):
        refused(post(client, CHECK, {"phoneNumber": swapped, "maxAge": bad}), 400, "INVALID_ARGUMENT")
    for hours in (0, -1, 2401, 2**40):
        refused(post(client, CHECK, {"phoneNumber": swapped, "maxAge": hours}), 400, "OUT_OF_RANGE")
        refused(post(client, CHECK, {"maxAge": hours}), 400, "OUT_OF_RANGE")  # before the identifier rule


def test_a_route_answered_by_a_grpc_method_is_one_entry(settings, clock, monkeypatch) -> None:
    """As KYC Match is (over IdentityService.MatchIdentity): here retrieve-date over GetSimSwap."""
    from ledger.server.http import camara
    from ledger.server.http.bodies import phone_number
    from ledger.v1 import recycling_service_pb2 as rpb

    by_rpc = dataclasses.replace(
        camara.ROUTES[1],
        path="/sim-swap-by-rpc/v2/retrieve-date",
        operation_id="retrieveSimSwapDateByRpc",
        answer=camara.ByRpc(
            "/ledger.v1.RecyclingService/GetSimSwap",
            lambda body: rpb.GetSimSwapRequest(number=phone_number(body)),
            lambda _body, response: {
                "latestSimChange": response.latest_sim_change_at.ToJsonString()
                if response.HasField("latest_sim_change_at")
                else None
            },
        ),
    )
    monkeypatch.setattr(camara, "ROUTES", (*camara.ROUTES, by_rpc))
    clock.t = NOW
    for stubs, _ in running_server(dataclasses.replace(settings, http_listen="127.0.0.1:0"), clock):
        h = History(stubs)
        h.call("ProvisionNumbers", numbers=[number(1)], occurred_at=at("2026-01-01T08:00:00"))
        h.holder(number(1), 1, "2026-02-01T08:00:00")
        settle(stubs, h.last)
        with httpx.Client(base_url=stubs.http, timeout=10) as client:
            assert by_rpc.path in client.get("/openapi.json").json()["paths"]
            r = post(client, by_rpc.path, {"phoneNumber": number(1)})
            assert r.status_code == 200 and r.json() == post(client, RETRIEVE, {"phoneNumber": number(1)}).json()
            refused(post(client, by_rpc.path, {}), 422, "MISSING_IDENTIFIER")
            refused(post(client, by_rpc.path, {"phoneNumber": number(1), "x": 1}), 400, "INVALID_ARGUMENT")
            refused(post(client, by_rpc.path, {"phoneNumber": number(2)}), 404, "IDENTIFIER_NOT_FOUND")
