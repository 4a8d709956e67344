"""CAMARA request bodies: a body checked against its route's JSON Schema (every problem named), and the
line it is about (``phoneNumber``; 2-legged access only, so a body without it is 422 MISSING_IDENTIFIER)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ledger.domain import errors
from ledger.server.errors import Malformed

PHONE_NUMBER = re.compile(r"^\+[1-9][0-9]{4,14}$")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
MISSING_IDENTIFIER = "MISSING_IDENTIFIER"

PHONE_NUMBER_SCHEMA = {
    "type": "string",
    "pattern": PHONE_NUMBER.pattern,
    "description": "The number in E.164 form with a leading '+'.",
    "example": "+8613800138000",
}


def parse_body(schema: Mapping[str, Any], body: bytes) -> dict[str, Any] | Malformed:
    """The body as its route's request ``schema`` allows it, or a ``Malformed`` naming every problem
    (answered 400 INVALID_ARGUMENT once the call is authenticated and counted). A body with no problem but the missing
    ``phoneNumber`` is returned as is: the route answers 422 MISSING_IDENTIFIER."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Malformed("json", [("body", "is not valid JSON")])
    if not isinstance(data, dict):
        return Malformed("json", [("body", "must be a JSON object")])
    problems: list[tuple[str, str]] = []
    properties = schema["properties"]
    for name in data:
        if name not in properties:
            problems.append((_short(name), "is not a property of this request"))
    for name, property_schema in properties.items():
        if name in data:
            problem = _problem(property_schema, data[name])
            if problem:
                problems.append((name, problem))
    for name in schema.get("required", ()):
        if name not in data:
            problems.append((name, "is required"))
    return Malformed("schema", problems) if problems else data


def _short(name: str) -> str:
    return name if len(name) <= 64 and name.isprintable() else repr(name[:64])


def _problem(schema: Mapping[str, Any], value: Any) -> str:
    """What is wrong with ``value`` for a property's schema (strings and integers: what CAMARA bodies hold)."""
    kind = schema["type"]
    if kind == "string":
        if not isinstance(value, str):
            return "must be a string"
        if "enum" in schema and value not in schema["enum"]:
            return "must be one of " + ", ".join(schema["enum"])
        if len(value) < schema.get("minLength", 0):
            return "must not be empty"
        if len(value) > schema.get("maxLength", len(value)):
            return f"must be at most {schema['maxLength']} characters"
        if "pattern" in schema and not re.match(schema["pattern"], value):
            return f"must match {schema['pattern']}"
        if schema.get("format") == "date" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return "must be a date (YYYY-MM-DD)"
        if schema.get("format") == "email" and not EMAIL.fullmatch(value):
            return "must be an email address (local-part@domain)"
        return ""
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        return ""  # the range is the route's to check: out of it is OUT_OF_RANGE, not INVALID_ARGUMENT
    return "has an unsupported type"  # pragma: no cover - the routes use strings and integers only


def phone_number(body: Mapping[str, Any]) -> str:
    """The line the call is about: 2-legged access only, so the body names it (else 422)."""
    number = body.get("phoneNumber")
    if number is None:
        raise errors.InvalidArgument(
            [("phoneNumber", "is required: this API is used with 2-legged access tokens only")], MISSING_IDENTIFIER
        )
    return str(number)
