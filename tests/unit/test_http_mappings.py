"""The HTTP port's tables: each ledger refusal as CAMARA's status and code (with Retry-After where the
client should come back), and each gRPC code as the Connect protocol's code and HTTP status."""

from __future__ import annotations

import grpc
import pytest

from ledger.domain import errors
from ledger.server import errors as edge_errors
from ledger.server.errors import to_status
from ledger.server.http.camara_errors import camara_error
from ledger.server.http.connect import connect_error
from ledger.server.http.gate import Failure
from projections import errors as view_errors

CAMARA = [
    (errors.InvalidArgument([("phoneNumber", "is required")], "MISSING_IDENTIFIER"), 422, "MISSING_IDENTIFIER", None),
    (errors.InvalidArgument([("specifiedDate", "is after today")], "OUT_OF_RANGE"), 400, "OUT_OF_RANGE", None),
    (errors.InvalidArgument([("body", "is not valid JSON")]), 400, "INVALID_ARGUMENT", None),
    (errors.NumberNotFound("+8613800000001"), 404, "IDENTIFIER_NOT_FOUND", None),
    (errors.HolderNotFound("+8613800000001", "QUARANTINED"), 404, "IDENTIFIER_NOT_FOUND", None),
    (
        errors.InvalidArgument([("number", "is the only field sent")], "INVALID_PARAM_COMBINATION"),
        400,
        "KNOW_YOUR_CUSTOMER.INVALID_PARAM_COMBINATION",
        None,
    ),
    (errors.NumberPortedOut("ported out"), 404, "IDENTIFIER_NOT_FOUND", None),
    (edge_errors.Unauthenticated("no token"), 401, "UNAUTHENTICATED", None),
    (edge_errors.PermissionDenied("no role"), 403, "PERMISSION_DENIED", None),
    (edge_errors.ResourceExhausted("budget"), 429, "TOO_MANY_REQUESTS", "1"),
    (view_errors.ReadModelRebuilding("numbers", 10), 503, "UNAVAILABLE", "5"),
    (view_errors.ReadModelBehind(10, 5), 503, "UNAVAILABLE", "1"),
    (view_errors.ReadModelMismatch("beyond the head"), 503, "UNAVAILABLE", "60"),
]


def _failure(exc: errors.LedgerError) -> Failure:
    status = to_status(exc)
    assert status is not None
    return Failure(
        grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == status.code)), status.message, status
    )


@pytest.mark.parametrize(("exc", "status", "code", "retry"), CAMARA)
def test_each_refusal_has_its_camara_status_and_code(exc, status: int, code: str, retry: str | None) -> None:
    got, body, headers = camara_error(_failure(exc))
    assert (got, body["status"], body["code"], headers.get("retry-after")) == (status, status, code, retry)
    assert body["message"] and "+8613800000001" not in body["message"]  # no number echoed


def test_an_unexpected_failure_is_internal() -> None:
    got, body, _ = camara_error(Failure(grpc.StatusCode.INTERNAL, "internal error; it was logged", None))
    assert (got, body["code"]) == (500, "INTERNAL")


def test_connect_codes_and_statuses_follow_the_protocol() -> None:
    table = {
        grpc.StatusCode.INVALID_ARGUMENT: ("invalid_argument", 400),
        grpc.StatusCode.FAILED_PRECONDITION: ("failed_precondition", 400),
        grpc.StatusCode.OUT_OF_RANGE: ("out_of_range", 400),
        grpc.StatusCode.UNAUTHENTICATED: ("unauthenticated", 401),
        grpc.StatusCode.PERMISSION_DENIED: ("permission_denied", 403),
        grpc.StatusCode.NOT_FOUND: ("not_found", 404),
        grpc.StatusCode.ALREADY_EXISTS: ("already_exists", 409),
        grpc.StatusCode.ABORTED: ("aborted", 409),
        grpc.StatusCode.RESOURCE_EXHAUSTED: ("resource_exhausted", 429),
        grpc.StatusCode.CANCELLED: ("canceled", 499),
        grpc.StatusCode.UNKNOWN: ("unknown", 500),
        grpc.StatusCode.INTERNAL: ("internal", 500),
        grpc.StatusCode.DATA_LOSS: ("data_loss", 500),
        grpc.StatusCode.UNIMPLEMENTED: ("unimplemented", 501),
        grpc.StatusCode.UNAVAILABLE: ("unavailable", 503),
        grpc.StatusCode.DEADLINE_EXCEEDED: ("deadline_exceeded", 504),
    }
    for code, (name, status) in table.items():
        got, body = connect_error(Failure(code, "m", None))
        assert (body["code"], got) == (name, status)
    got, body = connect_error(_failure(errors.NumberPortedOut("ported out")))
    assert got == 400 and body["details"][0]["type"] == "google.rpc.ErrorInfo"
    assert body["details"][0]["debug"]["reason"] == "NUMBER_PORTED_OUT"
