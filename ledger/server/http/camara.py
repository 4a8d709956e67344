"""The CAMARA routes: Number Recycling v0.2, SIM Swap v2 and KYC Match v0.4.

Each route is one entry of ``ROUTES``: its path, the gRPC service whose role and budgets it shares, its
request and response schemas (CAMARA's field names, written once here: the body is validated against
them and ``/openapi.json`` publishes them), the error codes it answers, and what answers it: a function
run on the pool over the same ``Answers`` the gRPC servicer uses, or (``ByRpc``) a gRPC method of the
ledger, called through the same interceptors as over gRPC, with the body translated to its request and
its response to the body (KYC Match, over ``IdentityService.MatchIdentity``).
Errors travel as the ledger's errors through the gRPC interceptors and are turned into CAMARA's
``{"status", "code", "message"}`` by ``camara_error``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

import grpc
import orjson

from ledger.application.identity import MAX_ID_NUMBER_LENGTH, MAX_NAME_LENGTH, MAX_NAME_SCORE, ONLY_NUMBER
from ledger.domain import errors
from ledger.domain.rules import IdType
from ledger.server.convert import ID_TYPE_VALUES
from ledger.server.errors import Malformed
from ledger.server.validation import Fields
from ledger.v1 import identity_service_pb2 as ipb
from projections import simswap
from projections.views import from_us, us

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from ledger.server.http.gate import Failure
    from projections.answers import Answers

PHONE_NUMBER = re.compile(r"^\+[1-9][0-9]{4,14}$")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
MISSING_IDENTIFIER = "MISSING_IDENTIFIER"
DAY_US = 86_400_000_000
# Seconds a client should wait before retrying, by the reason of a refusal (Retry-After).
RETRY_AFTER = {
    "READ_MODEL_REBUILDING": 5,
    "READ_MODEL_BEHIND": 1,
    "READ_MODEL_MISMATCH": 60,
    "STORE_UNAVAILABLE": 2,
    "RESOURCE_EXHAUSTED": 1,
}

PHONE_NUMBER_SCHEMA = {
    "type": "string",
    "pattern": PHONE_NUMBER.pattern,
    "description": "The number in E.164 form with a leading '+'.",
    "example": "+8613800138000",
}


@dataclass(frozen=True)
class ByRpc:
    """A route answered by a gRPC method of the ledger (``/ledger.v1.IdentityService/MatchIdentity``): its
    servicer answers, through the same interceptors (the method's service decides the role)."""

    method: str
    request: Callable[[dict[str, Any]], Message]  # the body as the method's request (raises InvalidArgument)
    response: Callable[[dict[str, Any], Any], dict[str, Any]]  # (the body sent, the method's response) as the answer


@dataclass(frozen=True)
class CamaraRoute:
    """One CAMARA operation served over HTTP."""

    path: str
    service: str  # the gRPC service whose role and budgets the route shares
    operation_id: str
    summary: str
    request: dict[str, Any]  # JSON Schema of the body (an object; phoneNumber identifies the line)
    response: dict[str, Any]  # JSON Schema of the 200 body
    answer: Callable[[Answers, dict[str, Any]], dict[str, Any]] | ByRpc
    # The codes each error status may carry, beside those every route may answer (COMMON_ERRORS).
    errors: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """The name the route's calls go by through the interceptors (its service decides the role)."""
        return self.answer.method if isinstance(self.answer, ByRpc) else f"/{self.service}{self.path}"

    def call_request(self, body: bytes) -> tuple[Any, dict[str, Any]]:
        """What the route's call carries through the interceptors, and the body as parsed so far: the body's
        bytes (parsed by the route's handler once the call is authenticated and counted); for a route answered
        by an RPC, its request (a small JSON body parsed on the loop) and the body, or a ``Malformed``
        answered 400 (or 422) after authentication."""
        if not isinstance(self.answer, ByRpc):
            return body, {}
        parsed = parse_body(self, body)
        if isinstance(parsed, Malformed):
            return parsed, {}
        try:
            return self.answer.request(parsed), parsed
        except errors.InvalidArgument as e:
            return Malformed("camara", e.violations, e.reason), parsed

    def answer_body(self, sent: dict[str, Any], response: Any) -> dict[str, Any]:
        """The route's answer for what its call returned (``sent``: the body, for a route answered by an RPC)."""
        return self.answer.response(sent, response) if isinstance(self.answer, ByRpc) else response


COMMON_ERRORS: dict[int, tuple[str, ...]] = {
    400: ("INVALID_ARGUMENT",),
    401: ("UNAUTHENTICATED",),
    403: ("PERMISSION_DENIED",),
    404: ("IDENTIFIER_NOT_FOUND",),
    422: (MISSING_IDENTIFIER,),
    429: ("TOO_MANY_REQUESTS",),
    500: ("INTERNAL",),
    503: ("UNAVAILABLE",),
}


def error_codes(route: CamaraRoute) -> dict[int, tuple[str, ...]]:
    """Every status the route may answer besides 200, with the codes each may carry."""
    codes = {status: tuple(found) for status, found in COMMON_ERRORS.items()}
    for status, more in route.errors.items():
        codes[status] = (*codes.get(status, ()), *more)
    return dict(sorted(codes.items()))


def parse_body(route: CamaraRoute, body: bytes) -> dict[str, Any] | Malformed:
    """The body as the route's schema allows it, or a ``Malformed`` naming every problem (answered 400
    INVALID_ARGUMENT once the call is authenticated and counted). A body with no problem but the missing
    ``phoneNumber`` is returned as is: the route answers 422 MISSING_IDENTIFIER."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Malformed("json", [("body", "is not valid JSON")])
    if not isinstance(data, dict):
        return Malformed("json", [("body", "must be a JSON object")])
    problems: list[tuple[str, str]] = []
    properties = route.request["properties"]
    for name in data:
        if name not in properties:
            problems.append((_short(name), "is not a property of this request"))
    for name, schema in properties.items():
        if name in data:
            problem = _problem(schema, data[name])
            if problem:
                problems.append((name, problem))
    for name in route.request.get("required", ()):
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


def check_number_recycling(answers: Answers, body: dict[str, Any]) -> dict[str, Any]:
    """Number Recycling: has the line's subscriber changed since ``specifiedDate``."""
    f = Fields()
    since = f.past_date("specifiedDate", body["specifiedDate"], answers.today())
    f.done()
    if since is None:  # f.done() refused every bad date already; this keeps the type honest
        raise errors.InvalidArgument([("specifiedDate", "must be a date, YYYY-MM-DD")])
    number = phone_number(body)  # after the body's other fields: a body with bad fields is 400, not 422
    _, _, answer = answers.check_one(number, since)
    if answer.status == "NO_DATA":
        if answer.no_data_reason == "RECORDS_BEGIN_LATER":
            raise errors.InvalidArgument(
                [("specifiedDate", "is before this operator's records of the number begin")], "OUT_OF_RANGE"
            )
        raise errors.NumberNotFound(number)  # unknown here, or ported out: not this operator's to answer
    return {"phoneNumberRecycled": answer.status == "CHANGED"}


def retrieve_sim_swap_date(answers: Answers, body: dict[str, Any]) -> dict[str, Any]:
    """SIM Swap: when the line's SIM last changed (null when no change is on record since monitoring began)."""
    _, found = answers.sim_swap(phone_number(body))
    moment = from_us(found.latest_sim_change_us)
    if moment is None:
        days = max(0, (us(answers.now()) - (found.monitored_since_us or 0)) // DAY_US)
        return {"latestSimChange": None, "monitoredPeriod": days}
    return {"latestSimChange": moment.astimezone(UTC).isoformat().replace("+00:00", "Z")}


def check_sim_swap(answers: Answers, body: dict[str, Any]) -> dict[str, Any]:
    """SIM Swap: whether the line's SIM changed in the last ``maxAge`` hours (240 when not given)."""
    hours = body.get("maxAge", simswap.DEFAULT_AGE_HOURS)
    if not simswap.MIN_AGE_HOURS <= hours <= simswap.MAX_AGE_HOURS:
        raise errors.InvalidArgument(
            [("maxAge", f"must be {simswap.MIN_AGE_HOURS} to {simswap.MAX_AGE_HOURS} hours")], "OUT_OF_RANGE"
        )
    _, found = answers.sim_swap(phone_number(body), hours)
    return {"swapped": found.swapped}


# KYC Match r1.2's request fields besides phoneNumber. The ledger holds the ID document (type and number, as
# one identity key), the full name and the date of birth; every other field is answered "not_available".
KYC_FIELDS = (
    "idDocument",
    "idDocumentType",
    "idDocumentExpiryDate",
    "name",
    "givenName",
    "familyName",
    "nameKanaHankaku",
    "nameKanaZenkaku",
    "middleNames",
    "familyNameAtBirth",
    "address",
    "streetName",
    "streetNumber",
    "postalCode",
    "region",
    "locality",
    "country",
    "houseNumberExtension",
    "birthdate",
    "email",
    "gender",
    "cityOfBirth",
    "countryOfBirth",
    "nationality",
)
# CAMARA's document types the ledger registers (DESIGN); any other cannot be the holder's document here.
KYC_ID_TYPES = {"national_id_card": IdType.RESIDENT_ID_CARD, "passport": IdType.PASSPORT}
KYC_ID_TYPE_ENUM = ["passport", "national_id_card", "residence_permit", "diplomatic_id", "driver_licence"]
KYC_ID_TYPE_ENUM += ["social_security_id", "other"]
INVALID_PARAM_COMBINATION = "KNOW_YOUR_CUSTOMER.INVALID_PARAM_COMBINATION"
_KYC_RESULTS = {
    ipb.MATCH_RESULT_TRUE: "true",
    ipb.MATCH_RESULT_FALSE: "false",
    ipb.MATCH_RESULT_NOT_AVAILABLE: "not_available",
}


def _kyc_id_type(body: Mapping[str, Any]) -> IdType | None:
    """The ID document type the ledger compares, when ``idDocument`` is sent with a type it registers."""
    return KYC_ID_TYPES.get(body.get("idDocumentType", "")) if "idDocument" in body else None


def kyc_match_request(body: dict[str, Any]) -> ipb.MatchIdentityRequest:
    """KYC Match's body as ``MatchIdentity``'s request: ``name`` is the full name, ``idDocument`` with a
    registered ``idDocumentType`` the ID document, ``birthdate`` the date of birth; givenName and familyName
    pass on (MatchIdentity answers them NOT_AVAILABLE). Only ``phoneNumber`` passes on as it is (MatchIdentity
    refuses it: INVALID_PARAM_COMBINATION, one refusal for both protocols)."""
    if "phoneNumber" not in body and not any(name in body for name in KYC_FIELDS):
        raise errors.InvalidArgument([("body", "names no field to compare (CAMARA: an empty body is invalid)")])
    request = ipb.MatchIdentityRequest(number=phone_number(body))
    kind = _kyc_id_type(body)
    if kind is not None:
        request.id_type = ID_TYPE_VALUES[kind]  # type: ignore[assignment]
        request.id_number = body["idDocument"]
    for name, target in (("name", "full_name"), ("givenName", "given_name"), ("familyName", "family_name")):
        if name in body:
            setattr(request, target, body[name])
    if "birthdate" in body:
        request.date_of_birth = body["birthdate"]
    compared = ("id_number", "full_name", "given_name", "family_name", "date_of_birth")
    if any(name in body for name in KYC_FIELDS) and not any(request.HasField(f) for f in compared):
        # Every field sent is one the ledger cannot compare (an address, an email, an ID number without a
        # type it registers): nothing to ask MatchIdentity, and no guess at a type.
        text = "sends no field this operator compares: idDocument with idDocumentType, name, givenName, familyName"
        raise errors.InvalidArgument([("body", f"{text} or birthdate")], ONLY_NUMBER)
    return request


def kyc_match_response(body: dict[str, Any], response: ipb.MatchIdentityResponse) -> dict[str, Any]:
    """``MatchIdentity``'s results as KYC Match's ``<field>Match`` for each field sent, in the order of the
    request's schema; the ID document's one result answers both idDocument and idDocumentType (the ledger
    compares them together), and what the ledger does not hold is "not_available"."""
    answered = {
        "name": response.name_match,
        "givenName": response.given_name_match,
        "familyName": response.family_name_match,
        "birthdate": response.birthdate_match,
    }
    if _kyc_id_type(body) is not None:
        answered["idDocument"] = answered["idDocumentType"] = response.id_document_match
    out: dict[str, Any] = {}
    for name in KYC_FIELDS:
        if name not in body:
            continue
        result = answered.get(name)
        out[f"{name}Match"] = _KYC_RESULTS[result] if result is not None else "not_available"
        if name == "name" and response.HasField("name_match_score"):
            out["nameMatchScore"] = response.name_match_score
    return out


def _kyc_request_schema() -> dict[str, Any]:
    text: dict[str, Any] = {"type": "string", "minLength": 1}
    properties: dict[str, Any] = {"phoneNumber": PHONE_NUMBER_SCHEMA}
    for name in KYC_FIELDS:
        properties[name] = {**text, "description": "Not held by this operator: answered not_available."}
    properties["idDocument"] = {
        **text,
        "maxLength": MAX_ID_NUMBER_LENGTH,
        "description": "The ID document's number; compared with idDocumentType national_id_card or passport only.",
    }
    properties["idDocumentType"] = {
        "type": "string",
        "enum": KYC_ID_TYPE_ENUM,
        "description": "The ID document's type; national_id_card and passport are compared (with idDocument).",
    }
    properties["name"] = {
        **text,
        "maxLength": MAX_NAME_LENGTH,
        "description": "The complete name, compared after NFKC, case folding and removing whitespace and punctuation.",
    }
    for name in ("givenName", "familyName"):
        properties[name] = {**text, "maxLength": MAX_NAME_LENGTH, "description": "Answered not_available."}
    properties["birthdate"] = {"type": "string", "format": "date", "description": "YYYY-MM-DD."}
    properties["idDocumentExpiryDate"] = {"type": "string", "format": "date", "description": "Answered not_available."}
    properties["email"] = {"type": "string", "format": "email", "description": "Answered not_available."}
    properties["gender"] = {
        "type": "string",
        "enum": ["MALE", "FEMALE", "OTHER"],
        "description": "Answered not_available.",
    }
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _kyc_response_schema() -> dict[str, Any]:
    result = {"type": "string", "enum": ["true", "false", "not_available"]}
    properties: dict[str, Any] = {f"{name}Match": result for name in KYC_FIELDS}
    properties["nameMatchScore"] = {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_NAME_SCORE,
        "description": "Jaro-Winkler similarity of the normalised names, only when nameMatch is false.",
    }
    return {"type": "object", "properties": properties, "additionalProperties": False}


RECYCLING = "ledger.v1.RecyclingService"
ROUTES: tuple[CamaraRoute, ...] = (
    CamaraRoute(
        path="/number-recycling/v0.2/check",
        service=RECYCLING,
        operation_id="checkNumberRecycling",
        summary="Whether the subscriber of the phone number changed after the specified date",
        request={
            "type": "object",
            "properties": {
                "phoneNumber": PHONE_NUMBER_SCHEMA,
                "specifiedDate": {
                    "type": "string",
                    "format": "date",
                    "description": "The date to check from (YYYY-MM-DD), no later than today.",
                    "example": "2024-10-31",
                },
            },
            "required": ["specifiedDate"],
            "additionalProperties": False,
        },
        response={
            "type": "object",
            "properties": {
                "phoneNumberRecycled": {
                    "type": "boolean",
                    "description": "true when the subscriber changed after specifiedDate.",
                }
            },
            "required": ["phoneNumberRecycled"],
            "additionalProperties": False,
        },
        answer=check_number_recycling,
        errors={400: ("OUT_OF_RANGE",)},
    ),
    CamaraRoute(
        path="/sim-swap/v2/retrieve-date",
        service=RECYCLING,
        operation_id="retrieveSimSwapDate",
        summary="When the SIM of the phone number last changed",
        request={
            "type": "object",
            "properties": {"phoneNumber": PHONE_NUMBER_SCHEMA},
            "additionalProperties": False,
        },
        response={
            "type": "object",
            "properties": {
                "latestSimChange": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "When the SIM last changed (RFC 3339); null when no change is on record.",
                },
                "monitoredPeriod": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Days the line has been monitored, when latestSimChange is null.",
                },
            },
            "required": ["latestSimChange"],
            "additionalProperties": False,
        },
        answer=retrieve_sim_swap_date,
    ),
    CamaraRoute(
        path="/sim-swap/v2/check",
        service=RECYCLING,
        operation_id="checkSimSwap",
        summary="Whether the SIM of the phone number changed in the last maxAge hours",
        request={
            "type": "object",
            "properties": {
                "phoneNumber": PHONE_NUMBER_SCHEMA,
                "maxAge": {
                    "type": "integer",
                    "minimum": simswap.MIN_AGE_HOURS,
                    "maximum": simswap.MAX_AGE_HOURS,
                    "default": simswap.DEFAULT_AGE_HOURS,
                    "description": "Hours to look back (1 to 2400; 240 when not given).",
                },
            },
            "additionalProperties": False,
        },
        response={
            "type": "object",
            "properties": {"swapped": {"type": "boolean", "description": "true when the SIM changed within maxAge."}},
            "required": ["swapped"],
            "additionalProperties": False,
        },
        answer=check_sim_swap,
        errors={400: ("OUT_OF_RANGE",)},
    ),
    CamaraRoute(
        path="/kyc-match/v0.4/match",
        service="ledger.v1.IdentityService",
        operation_id="KYC_Match",
        summary="Whether the fields sent match the registered data of the phone number's holder now",
        request=_kyc_request_schema(),
        response=_kyc_response_schema(),
        answer=ByRpc("/ledger.v1.IdentityService/MatchIdentity", kyc_match_request, kyc_match_response),
        errors={400: (INVALID_PARAM_COMBINATION,)},
    ),
)


def handler(route: CamaraRoute, answers: Answers) -> Callable[[Any, Any], dict[str, Any]]:
    """The route's plain handler, run on the pool behind the interceptors: it parses the body's bytes (so a
    caller without a valid token has nothing parsed) and answers."""

    answer = route.answer
    if isinstance(answer, ByRpc):
        raise TypeError(f"{route.path} is answered by its gRPC method, not by a plain handler")

    def behaviour(request: bytes, _context: Any) -> dict[str, Any]:
        body = parse_body(route, request)
        if isinstance(body, Malformed):
            raise body.error()
        return answer(answers, body)

    return behaviour


# A ledger answer that is not an answer, as CAMARA's status and code: (gRPC code, ErrorInfo reason) first,
# then the gRPC code alone.
_BY_REASON = {
    (grpc.StatusCode.INVALID_ARGUMENT, MISSING_IDENTIFIER): (422, MISSING_IDENTIFIER),
    (grpc.StatusCode.INVALID_ARGUMENT, "OUT_OF_RANGE"): (400, "OUT_OF_RANGE"),
    (grpc.StatusCode.INVALID_ARGUMENT, ONLY_NUMBER): (400, INVALID_PARAM_COMBINATION),
    (grpc.StatusCode.FAILED_PRECONDITION, "NUMBER_PORTED_OUT"): (404, "IDENTIFIER_NOT_FOUND"),
}
_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "INVALID_ARGUMENT"),
    grpc.StatusCode.NOT_FOUND: (404, "IDENTIFIER_NOT_FOUND"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "UNAUTHENTICATED"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "PERMISSION_DENIED"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "TOO_MANY_REQUESTS"),
    grpc.StatusCode.UNAVAILABLE: (503, "UNAVAILABLE"),
}
_MESSAGES = {
    "IDENTIFIER_NOT_FOUND": "the phone number is not one this operator serves",
    INVALID_PARAM_COMBINATION: "send at least one field this operator compares besides phoneNumber: idDocument with "
    "idDocumentType (national_id_card or passport), name, givenName, familyName or birthdate",
    "UNAVAILABLE": "the answer cannot be given now; retry after the time in Retry-After",
    "INTERNAL": "internal error; it was logged",
}


def camara_error(failure: Failure) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The HTTP status, the CAMARA error body and the extra headers for a call that did not answer."""
    reason = failure.reason
    status, code = _BY_REASON.get((failure.code, reason)) or _BY_CODE.get(failure.code, (500, "INTERNAL"))
    message = _MESSAGES.get(code, failure.message) if code != "UNAVAILABLE" else f"{_MESSAGES[code]} ({reason})"
    headers = {}
    if status in (429, 503):
        headers["retry-after"] = str(RETRY_AFTER.get(reason, 1))
    return status, {"status": status, "code": code, "message": message}, headers
