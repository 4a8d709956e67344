"""With tokens configured, a call is authenticated before its message bytes are parsed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import running_server
from tests.e2e import test_auth_tls
from tests.e2e.test_auth_tls import ROLES, bearer
from tests.e2e.test_lifecycle_grpc import details

tokens = test_auth_tls.tokens  # the same fixture: one token per role
GARBAGE = b"\xff\xff\xff\xff\x0f"  # a truncated varint: no message parses from it


def _raw(channel: grpc.Channel, method: str, streaming: bool):
    if streaming:
        return channel.stream_stream(method, request_serializer=None, response_deserializer=None)
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def _code(channel: grpc.Channel, method: str, streaming: bool, metadata=()) -> tuple[grpc.StatusCode, str]:
    call = _raw(channel, method, streaming)
    try:
        if streaming:
            list(call(iter([GARBAGE]), metadata=metadata, timeout=10))
        else:
            call(GARBAGE, metadata=metadata, timeout=10)
    except grpc.RpcError as e:
        return e.code(), details(e)[0]
    return grpc.StatusCode.OK, ""


METHODS = (
    ("/ledger.v1.LifecycleService/ProvisionNumbers", False, "operator"),
    ("/ledger.v1.HistoryService/GetNumberHistory", False, "compliance"),
    ("/ledger.v1.RecyclingService/CheckNumber", False, "checker"),
    ("/ledger.v1.RecyclingService/BatchCheck", True, "checker"),
)


def test_a_call_without_a_valid_token_is_refused_before_its_bytes_are_parsed(
    settings, clock, tokens: tuple[Path, dict[str, str]]
) -> None:
    path, issued = tokens
    for stubs, app in running_server(dataclasses.replace(settings, auth_file=path), clock):
        for method, streaming, role in METHODS:
            for metadata in ((), bearer("lgr_wrong")):
                assert _code(stubs.channel, method, streaming, metadata) == (
                    grpc.StatusCode.UNAUTHENTICATED,
                    "UNAUTHENTICATED",
                ), method
            other = next(r for r in ROLES if r not in (role, "admin"))
            assert _code(stubs.channel, method, streaming, bearer(issued[other])) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "PERMISSION_DENIED",
            ), method
            # With a valid token the bytes are parsed, and refused as they are.
            assert _code(stubs.channel, method, streaming, bearer(issued[role]))[0] == (
                grpc.StatusCode.INVALID_ARGUMENT
            ), method
        assert app.reader.max_position() == 0
        # Health and reflection stay open.
        health = health_pb2_grpc.HealthStub(stubs.channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        answer = next(iter(reflect.ServerReflectionInfo(iter([ask]), timeout=5)))
        assert "ledger.v1.RecyclingService" in {s.name for s in answer.list_services_response.service}
