"""CAMARA's errors: a call that did not answer (a ledger refusal through the gRPC interceptors) as CAMARA's
HTTP status, ``{"status", "code", "message"}`` body and ``Retry-After``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from ledger.application.identity import ONLY_NUMBER
from ledger.server.http.bodies import MISSING_IDENTIFIER
from ledger.server.http.kyc import INVALID_PARAM_COMBINATION

if TYPE_CHECKING:
    from ledger.server.http.gate import Failure

# Seconds a client should wait before retrying, by the reason of a refusal (Retry-After).
RETRY_AFTER = {
    "READ_MODEL_REBUILDING": 5,
    "READ_MODEL_BEHIND": 1,
    "READ_MODEL_MISMATCH": 60,
    "STORE_UNAVAILABLE": 2,
    "RESOURCE_EXHAUSTED": 1,
}


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
