"""Connect protocol unary calls on the HTTP port over a real server: every unary RPC is served, answers and
errors are the gRPC ones (same google.rpc details), HTTP statuses follow the Connect protocol, and
``buf curl`` with its default protocol reaches them."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2, recycling_service_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import number, running_server

STORES = ("sqlite", "postgres")
ROOT = Path(__file__).resolve().parents[2]
FILES = (lifecycle_service_pb2, hpb, recycling_service_pb2)


@pytest.fixture
def http(settings, clock):
    for stubs, _app in running_server(dataclasses.replace(settings, http_listen="127.0.0.1:0"), clock):
        with httpx.Client(base_url=stubs.http, timeout=10) as client:
            yield stubs, client


def call(client: httpx.Client, path: str, body: dict, **headers: str) -> httpx.Response:
    return client.post(path, json=body, headers={"connect-protocol-version": "1", **headers})


def unpacked(response: httpx.Response) -> dict[str, object]:
    """The Connect error's details, decoded from their bytes (not from the debug copies)."""
    found: dict[str, object] = {}
    for detail in response.json().get("details", []):
        raw = base64.b64decode(detail["value"] + "=" * (-len(detail["value"]) % 4))
        if detail["type"] == "google.rpc.ErrorInfo":
            found["reason"] = error_details_pb2.ErrorInfo.FromString(raw).reason
        if detail["type"] == "google.rpc.BadRequest":
            bad = error_details_pb2.BadRequest.FromString(raw)
            found["fields"] = [v.field for v in bad.field_violations]
    return found


def test_every_unary_rpc_is_served_and_no_stream(http) -> None:
    _, client = http
    paths = set(client.get("/openapi.json").json()["paths"])
    for module in FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                unary = not (method.client_streaming or method.server_streaming)
                assert (path in paths) == unary, path
                if unary:  # a real route: an empty body is answered by the servicer (or refused by it), never 404
                    assert call(client, path, {}).status_code not in (404, 405, 415, 500), path
                else:
                    r = call(client, path, {})
                    assert (r.status_code, r.json()["code"]) == (404, "unimplemented")


def test_answers_and_errors_are_the_grpc_ones(http) -> None:
    stubs, client = http
    r = call(client, "/ledger.v1.LifecycleService/ProvisionNumbers", {"requestId": "p1", "numbers": [number(1)]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["provisionedCount"] == 1
    # The same request id again: the same answer (the idempotency record is shared with gRPC).
    again = stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p1", numbers=[number(1)]))
    assert json_format.MessageToDict(again) == r.json()
    state = call(client, "/ledger.v1.HistoryService/GetNumberState", {"number": number(1)})
    grpc_state = stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=number(1)))
    assert state.status_code == 200 and state.json() == json_format.MessageToDict(grpc_state)
    # failed_precondition is HTTP 400 (Connect), with the same ErrorInfo reason as gRPC.
    r = call(client, "/ledger.v1.LifecycleService/ResumeNumber", {"requestId": "r1", "number": number(1)})
    assert r.status_code == 400 and r.json()["code"] == "failed_precondition"
    assert unpacked(r) == {"reason": "NUMBER_NOT_SUSPENDED"}
    with pytest.raises(grpc.RpcError) as caught:
        stubs.lifecycle.ResumeNumber(lpb.ResumeNumberRequest(request_id="r2", number=number(1)))
    assert caught.value.details() == r.json()["message"]
    # invalid_argument with the BadRequest's fields.
    r = call(client, "/ledger.v1.RecyclingService/CheckNumber", {"number": "12", "sinceDate": "nope"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument"
    assert unpacked(r) == {"reason": "INVALID_ARGUMENT", "fields": ["number", "since_date"]}
    # not_found 404; already_exists 409 (a request id reused for another request).
    r = call(client, "/ledger.v1.RecyclingService/GetClearance", {"number": number(2)})
    assert (r.status_code, r.json()["code"], unpacked(r)["reason"]) == (404, "not_found", "NUMBER_NOT_FOUND")
    r = call(client, "/ledger.v1.LifecycleService/ProvisionNumbers", {"requestId": "p1", "numbers": [number(3)]})
    assert (r.status_code, r.json()["code"], unpacked(r)["reason"]) == (409, "already_exists", "REQUEST_ID_REUSED")
    # Unknown fields are invalid_argument; so is a body that is not protobuf JSON.
    for body in ({"number": number(1), "sinceDate": "2026-01-01", "extra": 1}, {"number": 7}):
        r = call(client, "/ledger.v1.RecyclingService/CheckNumber", body)
        assert (r.status_code, r.json()["code"]) == (400, "invalid_argument"), r.text
    r = client.post(
        "/ledger.v1.RecyclingService/CheckNumber", content=b"{", headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json()["code"]) == (400, "invalid_argument")
    # Another media type: 415; binary protobuf (buf curl's default codec) is served too.
    r = client.post("/ledger.v1.RecyclingService/CheckNumber", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    request = recycling_service_pb2.CheckNumberRequest(number=number(1), since_date="2026-01-01")
    r = client.post(
        "/ledger.v1.RecyclingService/CheckNumber",
        content=request.SerializeToString(),
        headers={"content-type": "application/proto"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/proto"
    answer = recycling_service_pb2.CheckNumberResponse.FromString(r.content)
    assert answer.result.number == number(1)
    assert client.get("/ledger.v1.RecyclingService/CheckNumber").status_code == 405


def test_buf_curl_default_protocol(http) -> None:
    stubs, _ = http
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(5)]))
    out = subprocess.run(
        [str(ROOT / ".venv/bin/buf"), "curl", "--schema", str(ROOT / "protos"), "-d",
         json.dumps({"number": number(5), "sinceDate": "2026-01-01"}),
         f"{stubs.http}/ledger.v1.RecyclingService/CheckNumber"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"]["number"] == number(5)
    refused = subprocess.run(
        [str(ROOT / ".venv/bin/buf"), "curl", "--schema", str(ROOT / "protos"), "-d", json.dumps({"number": "1"}),
         f"{stubs.http}/ledger.v1.RecyclingService/GetSimSwap"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and json.loads(refused.stderr)["code"] == "invalid_argument"
