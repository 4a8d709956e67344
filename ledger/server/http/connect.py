"""Connect protocol unary calls (https://connectrpc.com/docs/protocol) for every unary RPC of the ledger's
services: ``POST /<package>.<Service>/<Method>`` with protobuf JSON (``application/json``) or binary
(``application/proto``) bodies. The route table is generated from the service descriptors of the methods
registered on the gRPC server, so a service or RPC added there is served here with no edit. Each call runs
through the same interceptors and servicer method as the gRPC call (``Gate``); an error is Connect's error
JSON carrying the same google.rpc details."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from ledger.server.errors import Malformed
from ledger.server.http.gate import Failure

JSON, PROTO = "application/json", "application/proto"
# Connect's names for the gRPC codes, and the HTTP status each is answered with (the Connect protocol's table).
CODES: dict[grpc.StatusCode, tuple[str, int]] = {
    grpc.StatusCode.CANCELLED: ("canceled", 499),
    grpc.StatusCode.UNKNOWN: ("unknown", 500),
    grpc.StatusCode.INVALID_ARGUMENT: ("invalid_argument", 400),
    grpc.StatusCode.DEADLINE_EXCEEDED: ("deadline_exceeded", 504),
    grpc.StatusCode.NOT_FOUND: ("not_found", 404),
    grpc.StatusCode.ALREADY_EXISTS: ("already_exists", 409),
    grpc.StatusCode.PERMISSION_DENIED: ("permission_denied", 403),
    grpc.StatusCode.RESOURCE_EXHAUSTED: ("resource_exhausted", 429),
    grpc.StatusCode.FAILED_PRECONDITION: ("failed_precondition", 400),
    grpc.StatusCode.ABORTED: ("aborted", 409),
    grpc.StatusCode.OUT_OF_RANGE: ("out_of_range", 400),
    grpc.StatusCode.UNIMPLEMENTED: ("unimplemented", 501),
    grpc.StatusCode.INTERNAL: ("internal", 500),
    grpc.StatusCode.UNAVAILABLE: ("unavailable", 503),
    grpc.StatusCode.DATA_LOSS: ("data_loss", 500),
    grpc.StatusCode.UNAUTHENTICATED: ("unauthenticated", 401),
}


@dataclass(frozen=True)
class ConnectMethod:
    """One unary RPC served as a Connect call."""

    path: str  # /ledger.v1.RecyclingService/CheckNumber: the gRPC method name, the HTTP path
    descriptor: MethodDescriptor
    request_type: type[Message]
    response_type: type[Message]

    def parse(self, body: bytes, content_type: str) -> Message | Malformed:
        """The request message, or a ``Malformed`` (answered invalid_argument once authenticated and counted)."""
        request = self.request_type()
        try:
            if content_type == PROTO:
                request.ParseFromString(body)
            else:
                json_format.Parse(body, request, ignore_unknown_fields=False, max_recursion_depth=32)
        except json_format.ParseError as e:
            return Malformed("json", [("request", _short(str(e)))])
        except Exception as e:  # bytes that are not protobuf, text that is not UTF-8, values protobuf refuses
            return Malformed(type(e).__name__, [("request", f"is not a valid {self.request_type.__name__}")])
        return request

    def encode(self, response: Message, content_type: str) -> bytes:
        """The response as the caller's codec writes it."""
        if content_type == PROTO:
            return response.SerializeToString()
        return orjson.dumps(json_format.MessageToDict(response))


def _short(text: str) -> str:
    return text if len(text) <= 300 else text[:299] + "…"


def connect_methods(methods: Iterable[str]) -> list[ConnectMethod]:
    """The Connect route table: each unary method among the registered gRPC ``methods`` (``/svc/Method``)
    of a service the ledger defines (``ledger.`` packages), in the descriptors' order."""
    pool = descriptor_pool.Default()
    services = sorted({m.lstrip("/").split("/", 1)[0] for m in methods if m.startswith("/ledger.")})
    table = []
    for name in services:
        service = pool.FindServiceByName(name)
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            if method.client_streaming or method.server_streaming or path not in methods:
                continue
            table.append(
                ConnectMethod(
                    path,
                    method,
                    message_factory.GetMessageClass(method.input_type),
                    message_factory.GetMessageClass(method.output_type),
                )
            )
    return table


def content_type_of(header: str) -> str | None:
    """The codec a Content-Type names (``application/json; charset=utf-8`` is JSON), None when unsupported."""
    kind = header.split(";", 1)[0].strip().lower()
    return kind if kind in (JSON, PROTO) else None


def timeout_of(header: str | None) -> float | None:
    """Connect-Timeout-Ms as seconds (None when absent or not 1-10 digits)."""
    if header is None or not header.isdigit() or len(header) > 10:
        return None
    return int(header) / 1000


def connect_error(failure: Failure) -> tuple[int, dict[str, Any]]:
    """The HTTP status and Connect's error JSON for a call that did not answer: the same message and
    google.rpc details (ErrorInfo, BadRequest, ...) as the gRPC status."""
    code, status = CODES.get(failure.code, ("unknown", 500))
    body: dict[str, Any] = {"code": code, "message": failure.message}
    details = []
    for detail in failure.status.details if failure.status is not None else ():
        item: dict[str, Any] = {
            "type": detail.TypeName(),
            "value": base64.b64encode(detail.value).decode().rstrip("="),
        }
        try:
            message = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(item["type"]))()
            detail.Unpack(message)
            item["debug"] = json_format.MessageToDict(message)
        except KeyError:  # a detail type this server does not know: its bytes alone
            pass
        details.append(item)
    if details:
        body["details"] = details
    return status, body
