"""Tracing: with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, ``ledger serve`` exports a server span per gRPC call
and per HTTP request and a child span per command to an OTLP receiver (a real one, here in the test),
continuing a caller's ``traceparent``, with no personal data in any span; unset, nothing is set up."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import datetime
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import lifecycle_service_pb2_grpc
from tests.conftest import imsi_for, new_iccid, number, resident_id
from tests.procs import ENV, Serve, free_port

NAME, OTHER_NAME = "Qiao Xiaoling", "Dmitri Vasquez-Oyelaran"
PURPOSE = "fraud case 19"
TRACE_ID, PARENT_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
LIFECYCLE = "ledger.v1.LifecycleService"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver on 127.0.0.1: keeps every span exported to it, with its resource."""

    def __init__(self, port: int = 0) -> None:
        self.spans: list[tuple[dict[str, object], Span]] = []
        self.exports = 0
        self.changed = threading.Condition()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    def Export(self, request, context):
        with self.changed:
            self.exports += 1
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend((resource, span) for span in scope_spans.spans)
            self.changed.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, done: Callable[[list[Span]], bool], timeout: float = 60) -> list[Span]:
        with self.changed:
            assert self.changed.wait_for(lambda: done([s for _, s in self.spans]), timeout), [
                s.name for _, s in self.spans
            ]
            return [s for _, s in self.spans]


def value(v: AnyValue) -> object:
    return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None


def attributes(kvs) -> dict[str, object]:
    return {kv.key: value(kv.value) for kv in kvs}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.stop(None)


def tracing_env(receiver: Receiver, delay_ms: int = 100) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": str(delay_ms),
    }


def onboard(serve: Serve, msisdn: str, name: str, seq: int, iccid: str, activate_metadata=()) -> str:
    serve.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=f"p{seq}", numbers=[msisdn]))
    sid = serve.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(request_id=f"r{seq}", full_name=name, id_type=1, id_number=resident_id(seq)),
        metadata=(("x-correlator", f"app-req:{seq}"),),
    ).subscriber_id
    serve.lifecycle.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id=f"v{seq}", subscriber_id=sid, method=1, channel="retail", agent_id="a1", evidence_ref="ev"
        )
    )
    serve.lifecycle.ActivateSim(
        lpb.ActivateSimRequest(
            request_id=f"a{seq}",
            number=msisdn,
            subscriber_id=sid,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="retail",
            agent_id="a1",
        ),
        metadata=activate_metadata,
    )
    return sid


def one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def child_of(spans: list[Span], parent: Span, name: str) -> Span:
    (child,) = [s for s in spans if s.parent_span_id == parent.span_id and s.name == name]
    assert child.trace_id == parent.trace_id
    return child


def test_calls_and_commands_are_traced_with_the_callers_trace_and_no_personal_data(
    tmp_path: Path, receiver: Receiver
) -> None:
    http_port = free_port()
    log = tmp_path / "serve.log"
    serve = Serve(
        f"sqlite:///{tmp_path}/ledger.db", ("--http", f"127.0.0.1:{http_port}"), log=log, env=tracing_env(receiver)
    )
    iccids = [new_iccid(), new_iccid()]
    try:
        onboard(serve, number(1), NAME, 1, iccids[0])
        sid = onboard(serve, number(2), OTHER_NAME, 2, iccids[1], (("traceparent", TRACEPARENT),))
        with pytest.raises(grpc.RpcError) as refused:  # the number is in use: refused by the command
            serve.lifecycle.ActivateSim(
                lpb.ActivateSimRequest(
                    request_id="a-again",
                    number=number(1),
                    subscriber_id=sid,
                    iccid=new_iccid(),
                    imsi=imsi_for(new_iccid()),
                    channel="retail",
                    agent_id="a1",
                )
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        list(
            serve.history.GetNumberHistory(
                hpb.GetNumberHistoryRequest(number=number(1), include_personal_data=True, purpose=PURPOSE)
            )
        )
        feed = serve.history.StreamEvents(hpb.StreamEventsRequest())  # a stream the client cancels
        next(feed)
        feed.cancel()
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as client:
            answer = client.post(
                f"/{LIFECYCLE}/ProvisionNumbers",
                json={"requestId": "http-p3", "numbers": [number(3)]},
                headers={"connect-protocol-version": "1", "traceparent": TRACEPARENT, "x-correlator": "web-1"},
            )
            assert answer.status_code == 200, answer.text
            check = client.post(
                "/number-recycling/v0.2/check",
                json={"phoneNumber": number(2), "specifiedDate": datetime.now().date().isoformat()},
            )
            assert check.status_code == 200, check.text
        names = {
            f"{LIFECYCLE}/ActivateSim",
            "ledger.v1.HistoryService/GetNumberHistory",
            f"POST /{LIFECYCLE}/ProvisionNumbers",
            "POST /number-recycling/v0.2/check",
            "ledger.v1.HistoryService/StreamEvents",
        }
        spans = receiver.wait_for(
            lambda spans: (
                names <= {s.name for s in spans}
                and sum(s.name == f"{LIFECYCLE}/ActivateSim" for s in spans) == 3
                and sum(s.name == "ProvisionNumbers" for s in spans) == 3
            )
        )
    finally:
        assert serve.stop() == 0

    resources = [r for r, _ in receiver.spans]
    assert {r["service.name"] for r in resources} == {"ledger"}
    # A server span per gRPC call, with the standard attributes and its status code.
    calls = [s for s in spans if s.name.startswith("ledger.v1.")]
    assert all(s.kind == Span.SPAN_KIND_SERVER for s in calls)
    activations = [s for s in calls if s.name == f"{LIFECYCLE}/ActivateSim"]
    for span in activations:
        a = attributes(span.attributes)
        assert (a["rpc.system"], a["rpc.service"], a["rpc.method"]) == ("grpc", LIFECYCLE, "ActivateSim")
    assert sorted(attributes(s.attributes)["rpc.grpc.status_code"] for s in activations) == [0, 0, 9]
    # The command's child span: its request id, position and outcome; a refusal's reason.
    commands = {
        attributes(c.attributes)["ledger.request_id"]: attributes(c.attributes)
        for c in (child_of(spans, s, "ActivateSim") for s in activations)
    }
    assert commands["a1"]["ledger.outcome"] == "recorded" and commands["a1"]["ledger.position"] > 0
    assert commands["a-again"]["ledger.outcome"] == "refused"
    assert commands["a-again"]["ledger.reason"] == "NUMBER_NOT_AVAILABLE"
    # The caller's trace continued, over gRPC and over HTTP.
    (continued,) = [s for s in activations if s.trace_id.hex() == TRACE_ID]
    assert continued.parent_span_id.hex() == PARENT_ID
    assert attributes(child_of(spans, continued, "ActivateSim").attributes)["ledger.request_id"] == "a2"
    register = [s for s in calls if s.name == f"{LIFECYCLE}/RegisterSubscriber"]
    assert sorted(attributes(s.attributes)["x_correlator"] for s in register) == ["app-req:1", "app-req:2"]
    connect = one(spans, f"POST /{LIFECYCLE}/ProvisionNumbers")
    assert (connect.trace_id.hex(), connect.parent_span_id.hex()) == (TRACE_ID, PARENT_ID)
    assert connect.kind == Span.SPAN_KIND_SERVER
    assert attributes(connect.attributes) == {
        "http.request.method": "POST",
        "http.route": f"/{LIFECYCLE}/ProvisionNumbers",
        "http.response.status_code": 200,
        "x_correlator": "web-1",
    }
    assert attributes(child_of(spans, connect, "ProvisionNumbers").attributes)["ledger.request_id"] == "http-p3"
    feed_span = one(spans, "ledger.v1.HistoryService/StreamEvents")
    assert attributes(feed_span.attributes)["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
    # Spans end in the context they began in: no error of the tracing (a context detached elsewhere).
    assert "ERROR" not in log.read_text(encoding="utf-8")
    camara = one(spans, "POST /number-recycling/v0.2/check")
    assert attributes(camara.attributes)["http.response.status_code"] == 200
    # No personal data anywhere: names, events, attribute values, resource.
    text = "\n".join(
        [s.name for s in spans]
        + [str(v) for s in spans for v in attributes(s.attributes).values()]
        + [e.name + str(attributes(e.attributes)) for s in spans for e in s.events]
        + [str(v) for r in resources for v in r.values()]
    )
    numbers = [number(i) for i in (1, 2, 3)]
    secrets = [NAME, OTHER_NAME, *NAME.split(), *OTHER_NAME.split(), resident_id(1), resident_id(2), PURPOSE]
    for secret in [*secrets, *numbers, *(n.lstrip("+") for n in numbers), *iccids, *map(imsi_for, iccids)]:
        assert secret not in text, secret


def test_the_spans_still_batched_are_exported_at_shutdown(tmp_path: Path, receiver: Receiver) -> None:
    # Batched for ten minutes: only the shutdown's flush can export them.
    serve = Serve(f"sqlite:///{tmp_path}/ledger.db", env=tracing_env(receiver, delay_ms=600_000))
    try:
        serve.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p1", numbers=[number(1)]))
    finally:
        assert serve.stop() == 0
    names = [s.name for _, s in receiver.spans]
    assert f"{LIFECYCLE}/ProvisionNumbers" in names and "ProvisionNumbers" in names


def test_with_workers_each_process_exports_its_spans_and_flushes_them_at_shutdown(
    tmp_path: Path, receiver: Receiver
) -> None:
    serve = Serve(f"sqlite:///{tmp_path}/ledger.db", ("--workers", "2"), env=tracing_env(receiver, delay_ms=600_000))
    calls = 12
    try:
        # Each call on a connection of its own: the kernel spreads them over the two workers.
        for i in range(calls):
            with grpc.insecure_channel(serve.target) as channel:
                stub = lifecycle_service_pb2_grpc.LifecycleServiceStub(channel)
                stub.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=f"p{i}", numbers=[number(i)]))
    finally:
        assert serve.stop() == 0
    served = [(r, s) for r, s in receiver.spans if s.name == f"{LIFECYCLE}/ProvisionNumbers"]
    assert len(served) == calls
    # Exported by the workers themselves (the supervising process has no provider).
    assert serve.proc.pid not in {r["process.pid"] for r, _ in served}


def test_without_the_endpoint_nothing_is_set_up_or_exported(tmp_path: Path) -> None:
    # The exporter's default endpoint is localhost:4317: listen there too when it is free, so a server that
    # set up tracing without the variable would be caught exporting.
    try:
        receiver = Receiver(4317)
    except RuntimeError:
        receiver = Receiver()
    log = tmp_path / "serve.log"
    http_port = free_port()
    env = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "ledger-off"}
    serve = Serve(f"sqlite:///{tmp_path}/ledger.db", ("--http", f"127.0.0.1:{http_port}"), log=log, env=env)
    try:
        serve.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p1", numbers=[number(1)]))
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as client:
            answer = client.post(
                f"/{LIFECYCLE}/ProvisionNumbers",
                json={"requestId": "http-p2", "numbers": [number(2)]},
                headers={"connect-protocol-version": "1", "traceparent": TRACEPARENT},
            )
            assert answer.status_code == 200, answer.text
    finally:
        assert serve.stop() == 0
        receiver.server.stop(None)
    assert receiver.exports == 0
    assert "tracing" not in log.read_text(encoding="utf-8")
    # The server's start-up, without the variable: no provider, and the SDK is not even loaded.
    probe = (
        "import sys; from ledger.server import app, tracing; "
        "assert tracing.start({}) is None and tracing.tracer is None; "
        "assert 'opentelemetry.sdk' not in sys.modules, 'the SDK was loaded'"
    )
    env_off = {k: v for k, v in ENV.items() if not k.startswith("OTEL_")}
    subprocess.run([sys.executable, "-c", probe], env=env_off, check=True, timeout=120)
