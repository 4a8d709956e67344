"""``serve --metrics``: a scrape during traffic shows what the traffic did, under bounded labels."""

from __future__ import annotations

import dataclasses
import re
import time

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.config import Limits
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import number, resident_id, running_server
from tests.e2e.test_auth_tls import tokens  # noqa: F401 (a fixture)
from tests.procs import ROOT

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str) -> Samples:
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grpc_labels(service: str, method: str, kind: str = "unary") -> dict[str, str]:
    return {"grpc_type": kind, "grpc_service": f"ledger.v1.{service}", "grpc_method": method}


@pytest.fixture
def observed(settings, clock):
    limits = dataclasses.replace(Limits.for_workers(settings.max_workers), max_feeds=1)
    settings = dataclasses.replace(settings, http_listen="127.0.0.1:0", metrics_listen="127.0.0.1:0", limits=limits)
    yield from running_server(settings, clock)


def settle(stubs, app) -> None:
    deadline = time.monotonic() + 30
    while stubs.projector.position < app.reader.max_position():
        assert time.monotonic() < deadline, "the read models did not catch up"
        time.sleep(0.02)


def test_a_scrape_during_traffic_counts_what_the_traffic_did(observed) -> None:
    stubs, app = observed
    before = scrape(stubs.metrics)
    stubs.onboard(number(1), seq=1)  # four commands
    settle(stubs, app)
    today = app.clock.now().date().isoformat()
    stubs.recycling.CheckNumber(rpb.CheckNumberRequest(number=number(1), since_date=today))
    stubs.recycling.CheckNumber(rpb.CheckNumberRequest(number=number(2), since_date=today))
    batch = rpb.BatchCheckRequest(
        queries=[{"number": number(1), "since_date": today}, {"number": number(3), "since_date": today}]
    )
    list(stubs.recycling.BatchCheck(iter([batch])))
    with httpx.Client(base_url=stubs.http, timeout=10) as client:
        answer = client.post("/number-recycling/v0.2/check", json={"phoneNumber": number(1), "specifiedDate": today})
        assert answer.status_code == 200, answer.text
        assert client.post("/no/such/route", json={}).status_code == 404
    # A disclosure: one subscriber's personal data, to a caller with every role (loopback, no --auth).
    list(
        stubs.history.GetNumberHistory(
            hpb.GetNumberHistoryRequest(number=number(1), include_personal_data=True, purpose="case 1")
        )
    )
    # A refusal by a budget: one feed at most (LEDGER_MAX_FEEDS=1), a second is refused.
    feed = stubs.history.StreamEvents(hpb.StreamEventsRequest())
    deadline = time.monotonic() + 10
    refused = None
    while refused is None:
        try:
            list(stubs.history.StreamEvents(hpb.StreamEventsRequest(), timeout=0.5))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                refused = e
        assert time.monotonic() < deadline, "the second feed was never refused"
    feed.cancel()
    after = scrape(stubs.metrics)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    activate = grpc_labels("LifecycleService", "ActivateSim")
    assert moved("grpc_server_started_total", **activate) == 1
    assert moved("grpc_server_handled_total", **activate, grpc_code="OK") == 1
    assert moved("grpc_server_handling_seconds_count", **activate) == 1
    check = grpc_labels("RecyclingService", "CheckNumber")
    assert moved("grpc_server_handled_total", **check, grpc_code="OK") == 2
    assert (
        moved(
            "grpc_server_handled_total", **grpc_labels("RecyclingService", "BatchCheck", "bidi_stream"), grpc_code="OK"
        )
        == 1
    )
    feeds = grpc_labels("HistoryService", "StreamEvents", "server_stream")
    assert moved("grpc_server_handled_total", **feeds, grpc_code="RESOURCE_EXHAUSTED") >= 1
    assert moved("ledger_limit_refusals_total", limit="LEDGER_MAX_FEEDS") >= 1
    # Checks: one per number, by API and answer; HTTP calls are not counted as gRPC calls.
    assert moved("ledger_checks_total", api="grpc", status="NOT_CHANGED") == 2  # CheckNumber and the batch's first
    assert moved("ledger_checks_total", api="grpc", status="NO_DATA") == 2  # CheckNumber and the batch's second
    assert moved("ledger_checks_total", api="http", status="NOT_CHANGED") == 1
    route = {"http_route": "/number-recycling/v0.2/check", "http_request_method": "POST"}
    assert moved("http_server_request_duration_seconds_count", **route, http_response_status_code="200") == 1
    other = {"http_route": "other", "http_request_method": "POST", "http_response_status_code": "404"}
    assert moved("http_server_request_duration_seconds_count", **other) == 1
    assert not [k for k in after if k[0].startswith("grpc_") and ("grpc_service", "number-recycling") in k[1]]
    assert moved("ledger_personal_data_disclosures_total", role="admin") == 1
    assert moved("ledger_events_appended_total") >= 5  # four commands and the disclosure's record
    assert moved("ledger_commit_batch_commands_count") >= 5
    # The gauges agree with what the ledger says of itself.
    status = stubs.history.GetStatus(hpb.GetStatusRequest())
    verified = stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest())
    now = scrape(stubs.metrics)
    assert value(now, "ledger_head_position") == verified.head_position == status.head_position
    for view in status.views:
        assert value(now, "ledger_read_model_position", view=view.name) == view.position
        assert value(now, "ledger_read_model_lag_events", view=view.name) == view.lag
        assert value(now, "ledger_read_model_state", view=view.name, state="serving") == 1
        assert value(now, "ledger_read_model_state", view=view.name, state="rebuilding") == 0
    assert value(now, "ledger_signed_head_size") == status.signed_head_size
    assert {"ledger_feeds_open", "ledger_erasures_held", "ledger_erasures_due"} <= {name for name, _ in now}
    # Every series the dashboard graphs is served.
    dashboard = (ROOT / "docs" / "grafana-dashboard.json").read_text(encoding="utf-8")
    graphed = set(re.findall(r"\b((?:ledger|grpc_server|http_server)_[a-z_]+)", dashboard))
    assert graphed and graphed <= {name for name, _ in now}, graphed - {name for name, _ in now}
    # No number, name, ID number or purpose is ever a label value.
    text = httpx.get(f"{stubs.metrics}/metrics", timeout=10).text
    for secret in (number(1), number(2), number(3), resident_id(1), "Subscriber 1", "case 1"):
        assert secret not in text


def test_the_metrics_port_serves_only_metrics(observed) -> None:
    stubs, _ = observed
    assert httpx.get(f"{stubs.metrics}/other", timeout=10).status_code == 404
    assert httpx.post(f"{stubs.metrics}/metrics", timeout=10).status_code == 404


def test_with_workers_the_counters_are_summed_over_the_processes(tmp_path) -> None:
    from ledger.v1 import lifecycle_service_pb2_grpc
    from tests.procs import Serve, free_port

    metrics = f"http://127.0.0.1:{free_port()}"
    serve = Serve(
        f"sqlite:///{tmp_path}/ledger.db",
        ("--workers", "2", "--metrics", metrics.removeprefix("http://")),
        log=tmp_path / "serve.log",
        env={"LEDGER_METRICS_INTERVAL_SECONDS": "0.2", "TMPDIR": str(tmp_path)},
    )
    try:
        # Each call on a connection of its own: the kernel spreads them over the two workers.
        calls = 12
        for i in range(calls):
            with grpc.insecure_channel(serve.target) as channel:
                stub = lifecycle_service_pb2_grpc.LifecycleServiceStub(channel)
                stub.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=f"p{i}", numbers=[number(i)]))
        provision = grpc_labels("LifecycleService", "ProvisionNumbers")
        head = serve.history.VerifyIntegrity(hpb.VerifyIntegrityRequest()).head_position
        deadline = time.monotonic() + 30
        while True:
            samples = scrape(metrics)
            if value(samples, "ledger_head_position") == head:
                break
            assert time.monotonic() < deadline, value(samples, "ledger_head_position")
            time.sleep(0.1)
        assert value(samples, "grpc_server_started_total", **provision) == calls
        assert value(samples, "grpc_server_handled_total", **provision, grpc_code="OK") == calls
        assert value(samples, "grpc_server_handling_seconds_count", **provision) == calls
        assert value(samples, "ledger_events_appended_total") == head
        assert value(samples, "ledger_read_model_state", view="numbers", state="serving") == 1
        assert len(list(tmp_path.glob("ledger-metrics-*/counter_*.db"))) == 2  # one file of counts per worker
    finally:
        assert serve.stop() == 0
    assert not list(tmp_path.glob("ledger-metrics-*"))  # removed at exit


def test_a_refused_call_after_an_answered_one_is_counted_as_refused(settings, clock, tokens) -> None:  # noqa: F811
    from tests.e2e.test_auth_tls import bearer

    path, issued = tokens
    settings = dataclasses.replace(settings, auth_file=path, metrics_listen="127.0.0.1:0")
    for stubs, _ in running_server(settings, clock):
        before = scrape(stubs.metrics)
        provision = stubs.lifecycle.ProvisionNumbers
        provision(lpb.ProvisionNumbersRequest(request_id="p1", numbers=[number(1)]), metadata=bearer(issued["admin"]))
        for metadata in ((), bearer("not-a-token")):  # the request is never parsed: no request_id to read
            with pytest.raises(grpc.RpcError) as refused:
                provision(lpb.ProvisionNumbersRequest(request_id="p2", numbers=[number(1)]), metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, refused.value.details()
        samples = scrape(stubs.metrics)
        labels = grpc_labels("LifecycleService", "ProvisionNumbers")
        for code, calls in (("UNAUTHENTICATED", 2), ("OK", 1)):
            moved = value(samples, "grpc_server_handled_total", **labels, grpc_code=code) - value(
                before, "grpc_server_handled_total", **labels, grpc_code=code
            )
            assert moved == calls, code
