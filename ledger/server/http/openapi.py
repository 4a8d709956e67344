"""``GET /openapi.json``: an OpenAPI 3.1 document of exactly what the HTTP port serves, generated from the
route definitions: the CAMARA routes from their schemas and error codes, the Connect routes from the
protobuf descriptors of their messages (protobuf JSON, as ``json_format`` reads and writes it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from ledger.server.http.camara import CamaraRoute, error_codes
from ledger.server.http.connect import CODES, ConnectMethod

CORRELATOR_PATTERN = r"^[a-zA-Z0-9-_:;.\/<>{}]{0,256}$"
_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
_INT64 = {"type": ["string", "integer"], "pattern": r"^-?[0-9]+$", "minimum": -(2**63), "maximum": 2**63 - 1}
_UINT64 = {"type": ["string", "integer"], "pattern": r"^[0-9]+$", "minimum": 0, "maximum": 2**64 - 1}
_FLOAT = {"anyOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_DOUBLE: _FLOAT,
    FieldDescriptor.TYPE_FLOAT: _FLOAT,
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
# Well-known types have JSON forms of their own.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
}
_ERROR_DESCRIPTIONS = {
    400: "The request is not valid",
    401: "No valid token",
    403: "The token lacks the role this call needs",
    404: "Not found",
    409: "Conflict",
    415: "The Content-Type is not application/json or application/proto",
    422: "The request cannot be processed",
    429: "Over a call budget; retry after Retry-After seconds",
    500: "Internal error",
    501: "Not implemented",
    503: "The answer cannot be given now; retry after Retry-After seconds",
    504: "The caller's timeout passed",
}


def document(camara: Sequence[CamaraRoute], connect: Sequence[ConnectMethod], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes."""
    schemas: dict[str, Any] = {
        "ErrorInfo": {
            "type": "object",
            "description": "A CAMARA error.",
            "properties": {
                "status": {"type": "integer", "description": "The HTTP status"},
                "code": {"type": "string"},
                "message": {"type": "string"},
            },
            "required": ["status", "code", "message"],
            "additionalProperties": False,
        },
        "connect.Error": {
            "type": "object",
            "description": "A Connect error, carrying the same google.rpc details as the gRPC status.",
            "properties": {
                "code": {"type": "string", "enum": sorted({name for name, _ in CODES.values()})},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string"},
                            "value": {"type": "string", "contentEncoding": "base64"},
                            "debug": {},
                        },
                        "required": ["type", "value"],
                    },
                },
            },
            "required": ["code"],
        },
    }
    paths: dict[str, Any] = {}
    for route in camara:
        paths[route.path] = {"post": _camara_operation(route)}
    for method in connect:
        paths[method.path] = {"post": _connect_operation(method, schemas)}
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "parameters": [_CORRELATOR],
            "responses": {
                "200": {
                    "description": "The OpenAPI document",
                    "headers": _HEADERS,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": _error("#/components/schemas/ErrorInfo", 400, "An x-correlator that does not fit its pattern"),
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Subscriber lifecycle ledger",
            "version": version,
            "description": (
                "CAMARA Number Recycling and SIM Swap, and every unary RPC of the ledger's gRPC services as "
                "Connect protocol calls (protobuf JSON). Tokens: `Authorization: Bearer <token>` from the "
                "server's --auth file (role checker for the CAMARA routes; the Connect routes as their gRPC "
                "service); without --auth, loopback callers only."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


_CORRELATOR = {
    "name": "x-correlator",
    "in": "header",
    "required": False,
    "description": "A correlation id, echoed on the response.",
    "schema": {"type": "string", "pattern": CORRELATOR_PATTERN},
}
_HEADERS = {"x-correlator": {"description": "The request's x-correlator", "schema": {"type": "string"}}}
_RETRY = {
    **_HEADERS,
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}},
}


def _error(ref: str, status: int, description: str | None = None) -> dict[str, Any]:
    return {
        "description": description or _ERROR_DESCRIPTIONS[status],
        "headers": _RETRY if status in (429, 503) else _HEADERS,
        "content": {"application/json": {"schema": {"$ref": ref}}},
    }


def _camara_operation(route: CamaraRoute) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "headers": _HEADERS,
            "content": {"application/json": {"schema": route.response}},
        }
    }
    for status, codes in error_codes(route).items():
        responses[str(status)] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "headers": _RETRY if status in (429, 503) else _HEADERS,
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [
                            {"$ref": "#/components/schemas/ErrorInfo"},
                            {
                                "type": "object",
                                "properties": {"status": {"const": status}, "code": {"enum": list(codes)}},
                            },
                        ]
                    }
                }
            },
        }
    return {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.path.split("/")[1]],
        "parameters": [_CORRELATOR],
        "requestBody": {"required": True, "content": {"application/json": {"schema": route.request}}},
        "responses": responses,
    }


def _connect_operation(method: ConnectMethod, schemas: dict[str, Any]) -> dict[str, Any]:
    service, name = method.path.lstrip("/").split("/", 1)
    request = _message(method.descriptor.input_type, schemas)
    response = _message(method.descriptor.output_type, schemas)
    responses: dict[str, Any] = {
        "200": {"description": "OK", "headers": _HEADERS, "content": {"application/json": {"schema": response}}}
    }
    for status in sorted({s for _, s in CODES.values() if s != 499} | {415}):
        responses[str(status)] = _error("#/components/schemas/connect.Error", status)
    return {
        "operationId": f"{service}.{name}",
        "summary": f"{name} (Connect unary call)",
        "tags": [service],
        "parameters": [
            _CORRELATOR,
            {
                "name": "Connect-Timeout-Ms",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": r"^[0-9]{1,10}$"},
            },
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": responses,
    }


def _message(descriptor: Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    """A $ref to the message's schema, adding it (and the messages it holds) to ``schemas``."""
    name = descriptor.full_name
    if name in _WELL_KNOWN:
        return _WELL_KNOWN[name]
    if name not in schemas:
        schemas[name] = {}  # placed first: a message may hold itself
        properties = {}
        for f in descriptor.fields:
            properties[f.json_name] = _field(f, schemas)
        schemas[name] = {"type": "object", "properties": properties, "additionalProperties": False}
    return {"$ref": f"#/components/schemas/{name}"}


def _field(f: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        value = f.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single(value, schemas)}
    single = _single(f, schemas)
    return {"type": "array", "items": single} if f.is_repeated else single


def _single(f: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if f.type == FieldDescriptor.TYPE_MESSAGE or f.type == FieldDescriptor.TYPE_GROUP:
        return _message(f.message_type, schemas)
    if f.type == FieldDescriptor.TYPE_ENUM:
        return _enum(f.enum_type)
    return dict(_SCALARS[f.type])


def _enum(descriptor: EnumDescriptor) -> dict[str, Any]:
    return {"anyOf": [{"type": "string", "enum": [v.name for v in descriptor.values]}, _INT32]}
