"""``serve --log-format json``: every line on stderr is one JSON object; one access line per call with its
fields; a client that cancels is INFO; no personal data in any line. And ``x-correlator`` over gRPC."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path

import grpc
import httpx
import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import imsi_for, new_iccid, number, resident_id
from tests.procs import Serve, free_port

NAME, OTHER_NAME = "Qiao Xiaoling", "Dmitri Vasquez-Oyelaran"


def onboard(serve: Serve, msisdn: str, name: str, seq: int, correlator: str) -> str:
    metadata = (("x-correlator", correlator),)
    serve.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=f"p{seq}", numbers=[msisdn]))
    sid = serve.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(request_id=f"r{seq}", full_name=name, id_type=1, id_number=resident_id(seq)),
        metadata=metadata,
    ).subscriber_id
    serve.lifecycle.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id=f"v{seq}", subscriber_id=sid, method=1, channel="retail", agent_id="a1", evidence_ref="ev"
        )
    )
    iccid = new_iccid()
    serve.lifecycle.ActivateSim(
        lpb.ActivateSimRequest(
            request_id=f"a{seq}",
            number=msisdn,
            subscriber_id=sid,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="retail",
            agent_id="a1",
        )
    )
    return sid


def read_lines(log: Path) -> list[dict]:
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines, "the server wrote nothing"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a line that is not JSON: {line!r}")
    return parsed


def test_a_run_logs_one_json_object_per_line_with_call_fields_and_no_personal_data(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    http_port = free_port()
    serve = Serve(
        f"sqlite:///{tmp_path}/ledger.db",
        ("--log-format", "json", "--http", f"127.0.0.1:{http_port}", "--metrics", f"127.0.0.1:{free_port()}"),
        log=log,
        # gRPC's C core would write its own (non-JSON) lines with these: in JSON mode it writes none.
        env={"LEDGER_MAX_FEEDS": "1", "GRPC_VERBOSITY": "DEBUG", "GRPC_TRACE": "api"},
    )
    try:
        onboard(serve, number(1), NAME, 1, "app-req:42")
        onboard(serve, number(2), OTHER_NAME, 2, "app-req:43")
        today = datetime.now().date().isoformat()
        serve.recycling.CheckNumber(rpb.CheckNumberRequest(number=number(1), since_date=today, min_position=8))
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as client:
            answer = client.post(
                "/number-recycling/v0.2/check",
                json={"phoneNumber": number(2), "specifiedDate": today},
                headers={"x-correlator": "camara-7"},
            )
            assert answer.status_code == 200, answer.text
        # A disclosure.
        items = list(
            serve.history.GetNumberHistory(
                hpb.GetNumberHistoryRequest(number=number(1), include_personal_data=True, purpose="fraud case 19")
            )
        )
        assert NAME in str(items)  # disclosed to the caller, and to no log line
        # A refusal (one feed at most), and a cancelled stream: the feed itself.
        feed = serve.history.StreamEvents(hpb.StreamEventsRequest())
        first = threading.Event()
        threading.Thread(target=lambda: (next(feed), first.set()), daemon=True).start()
        assert first.wait(30)
        with pytest.raises(grpc.RpcError) as refused:
            list(serve.history.StreamEvents(hpb.StreamEventsRequest(), timeout=10))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        feed.cancel()
        # A cancelled unary wait.
        waiting = serve.recycling.CheckNumber.future(
            rpb.CheckNumberRequest(number=number(1), since_date=today, min_position=10_000), timeout=30
        )
        with pytest.raises(grpc.FutureTimeoutError):  # it waits for a position not reached
            waiting.result(timeout=0.5)
        waiting.cancel()
    finally:
        assert serve.stop() == 0
    lines = read_lines(log)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert datetime.fromisoformat(line["time"]).utcoffset() is not None, line
    assert not [line for line in lines if line["level"] in ("ERROR", "CRITICAL")], lines
    calls = [line for line in lines if line["logger"] == "ledger.access"]
    assert all(line["level"] == "INFO" and "duration_ms" in line and "code" in line for line in calls)
    by_rpc = {}
    for line in calls:
        by_rpc.setdefault(line.get("rpc") or line.get("route"), []).append(line)
    register = by_rpc["ledger.v1.LifecycleService/RegisterSubscriber"]
    assert [c["x_correlator"] for c in register] == ["app-req:42", "app-req:43"]
    assert [c["request_id"] for c in register] == ["r1", "r2"] and {c["code"] for c in register} == {"OK"}
    assert all(c["actor"] and c["peer"] for c in register)
    (camara,) = by_rpc["/number-recycling/v0.2/check"]
    assert (camara["code"], camara["x_correlator"]) == (200, "camara-7")
    assert camara["actor"] and camara["peer"].startswith("ipv4:127.0.0.1:")
    feeds = by_rpc["ledger.v1.HistoryService/StreamEvents"]
    assert sorted(c["code"] for c in feeds) == ["CANCELLED", "RESOURCE_EXHAUSTED"]
    assert "CANCELLED" in {c["code"] for c in by_rpc["ledger.v1.RecyclingService/CheckNumber"]}
    assert by_rpc["ledger.v1.HistoryService/GetNumberHistory"][0]["code"] == "OK"
    text = log.read_text(encoding="utf-8")
    for secret in (NAME, OTHER_NAME, resident_id(1), resident_id(2), "fraud case 19", *NAME.split()):
        assert secret not in text, secret


def test_x_correlator_over_grpc_is_returned_and_a_bad_one_refused_unechoed(server) -> None:
    stubs, _ = server
    request = hpb.GetStatusRequest()
    _, call = stubs.history.GetStatus.with_call(request, metadata=(("x-correlator", "abc-1:{x}"),))
    assert ("x-correlator", "abc-1:{x}") in tuple(call.initial_metadata())
    _, call = stubs.history.GetStatus.with_call(request)
    assert "x-correlator" not in dict(call.initial_metadata())
    with pytest.raises(grpc.RpcError) as bad:
        stubs.history.GetStatus(request, metadata=(("x-correlator", "has space%!"),))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "has space" not in (bad.value.details() or "")
    assert "x-correlator" not in dict(bad.value.initial_metadata() or ())
