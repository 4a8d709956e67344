"""Exhausted retries become ConcurrencyConflict, and each error family maps to its gRPC status."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import IntegrityError
from google.rpc import code_pb2, error_details_pb2

from ledger.application import pipeline
from ledger.application.commands import ProvisionNumbers
from ledger.application.pipeline import execute
from ledger.domain import errors
from ledger.server.errors import to_status


def test_a_command_that_keeps_conflicting_gives_up_and_records_nothing(app, monkeypatch) -> None:
    before = app.reader.max_position()
    monkeypatch.setattr(pipeline, "MAX_ATTEMPTS", 3)
    attempts = []

    def conflicting_record(processing_event):  # a fault injected at the store boundary
        attempts.append(processing_event.events)
        raise IntegrityError("simulated concurrent writer")

    monkeypatch.setattr(app, "_record", conflicting_record)
    with pytest.raises(errors.ConcurrencyConflict):
        execute(app, ProvisionNumbers(numbers=["+8613800000001"]), request_id="p", actor="t")
    assert len(attempts) == 3
    assert app.reader.max_position() == before


@pytest.mark.parametrize(
    ("exc", "code", "reason"),
    [
        (errors.InvalidArgument([("number", "bad")]), code_pb2.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (errors.QuarantineNotElapsed("x"), code_pb2.FAILED_PRECONDITION, "QUARANTINE_NOT_ELAPSED"),
        (errors.NumberNotFound("+1"), code_pb2.NOT_FOUND, "NUMBER_NOT_FOUND"),
        (errors.RequestNotFound("r-9"), code_pb2.NOT_FOUND, "REQUEST_NOT_FOUND"),
        (errors.RequestIdReused("r", "ActivateSim"), code_pb2.ALREADY_EXISTS, "REQUEST_ID_REUSED"),
        (errors.ConcurrencyConflict("x"), code_pb2.ABORTED, "CONCURRENCY_CONFLICT"),
        (NotImplementedError(), code_pb2.UNIMPLEMENTED, ""),
    ],
)
def test_status_mapping(exc: Exception, code: int, reason: str) -> None:
    status = to_status(exc)
    assert status is not None and status.code == code
    reasons = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append(info.reason)
    assert reasons == ([reason] if reason else [])


def test_unexpected_errors_are_not_mapped() -> None:
    assert to_status(RuntimeError("boom")) is None


def test_errors_of_the_read_models_and_the_edge_live_beside_their_code_and_map_as_before() -> None:
    """``ledger.domain.errors`` holds the domain's refusals only; the read models' errors live in
    ``projections.errors``, the edge's in ``ledger.server.errors``, all still ``LedgerError`` and mapped
    by the one interceptor."""
    from ledger.server.errors import PermissionDenied, ResourceExhausted, Unauthenticated
    from projections.errors import ReadModelBehind, ReadModelMismatch, ReadModelRebuilding

    moved = [
        (ReadModelBehind(5, 3), code_pb2.UNAVAILABLE, "READ_MODEL_BEHIND"),
        (ReadModelRebuilding("numbers", 7, head=9), code_pb2.UNAVAILABLE, "READ_MODEL_REBUILDING"),
        (ReadModelMismatch("x"), code_pb2.UNAVAILABLE, "READ_MODEL_MISMATCH"),
        (Unauthenticated("x"), code_pb2.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (PermissionDenied("x"), code_pb2.PERMISSION_DENIED, "PERMISSION_DENIED"),
        (ResourceExhausted("x"), code_pb2.RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"),
    ]
    for exc, code, reason in moved:
        assert isinstance(exc, errors.LedgerError)
        assert not hasattr(errors, type(exc).__name__)
        test_status_mapping(exc, code, reason)
