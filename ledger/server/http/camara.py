"""The CAMARA routes: Number Recycling v0.2, SIM Swap v2 and KYC Match v0.4.

Each route is one entry of ``ROUTES``: its path, the gRPC service whose role and budgets it shares, its
request and response schemas (CAMARA's field names, written once here: the body is validated against
them and ``/openapi.json`` publishes them), the error codes it answers, and what answers it: a function
run on the pool over the same ``Answers`` the gRPC servicer uses, or (``ByRpc``) a gRPC method of the
ledger, called through the same interceptors as over gRPC, with the body translated to its request and
its response to the body (KYC Match, over ``IdentityService.MatchIdentity``: ``kyc``). Bodies are checked
against the schemas by ``bodies``; errors travel as the ledger's errors through the gRPC interceptors and
are turned into CAMARA's ``{"status", "code", "message"}`` by ``camara_errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

from ledger.domain import errors
from ledger.server.errors import Malformed
from ledger.server.http.bodies import MISSING_IDENTIFIER, PHONE_NUMBER_SCHEMA, parse_body, phone_number
from ledger.server.http.kyc import (
    INVALID_PARAM_COMBINATION,
    kyc_match_request,
    kyc_match_response,
    kyc_request_schema,
    kyc_response_schema,
)
from ledger.server.validation import Fields
from projections import simswap
from projections.views import from_us, us

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from projections.answers import Answers

DAY_US = 86_400_000_000


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
        parsed = parse_body(self.request, body)
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
        request=kyc_request_schema(),
        response=kyc_response_schema(),
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
        body = parse_body(route.request, request)
        if isinstance(body, Malformed):
            raise body.error()
        return answer(answers, body)

    return behaviour
