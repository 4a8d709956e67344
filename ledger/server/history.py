"""HistoryService: a number's history and its state at a point in time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from ledger.application.feed import Feed
from ledger.application.reads import number_history, number_state, verify_integrity
from ledger.domain import errors
from ledger.server.auth import actor_of
from ledger.server.convert import ledger_event, number_state_message
from ledger.server.validation import Fields
from ledger.v1 import history_service_pb2 as pb
from ledger.v1 import history_service_pb2_grpc

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from projections.audit import Auditor

# Positions are stored as signed 64-bit integers.
MAX_POSITION = 2**63 - 1


class HistoryServicer(history_service_pb2_grpc.HistoryServiceServicer):
    """The compliance-facing read API."""

    def __init__(self, app: LedgerApplication, max_feeds: int = 8, auditor: Auditor | None = None) -> None:
        self.app = app
        self.auditor = auditor
        # Each feed holds a worker thread while it follows the ledger; bound them so calls still get served.
        self._feeds = threading.BoundedSemaphore(max_feeds)
        self.max_feeds = max_feeds
        self.feed = Feed(app)

    def GetNumberHistory(
        self, request: pb.GetNumberHistoryRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetNumberHistoryResponse]:
        """Stream a number's history in ledger order."""
        f = Fields()
        number = f.msisdn("number", request.number)
        purpose = ""
        if request.include_personal_data:
            purpose = f.text("purpose", request.purpose, 500)
        f.done()
        items = number_history(
            self.app, number, request.include_personal_data, actor_of(context), purpose, request.legal_hold
        )
        for item in items:
            yield pb.GetNumberHistoryResponse(event=ledger_event(item))

    def GetNumberState(
        self, request: pb.GetNumberStateRequest, context: grpc.ServicerContext
    ) -> pb.GetNumberStateResponse:
        """A number's state now or at ``as_of``."""
        f = Fields()
        number = f.msisdn("number", request.number)
        as_of = f.timestamp(request, "as_of")
        f.done()
        view = number_state(self.app, number, as_of)
        return pb.GetNumberStateResponse(number_state=number_state_message(view))

    def VerifyIntegrity(
        self, request: pb.VerifyIntegrityRequest, context: grpc.ServicerContext
    ) -> pb.VerifyIntegrityResponse:
        """Recompute the hash chains and report the first event that does not match."""
        f = Fields()
        number = f.msisdn("number", request.number) if request.number else ""
        if number and request.up_to_position:
            f.add("up_to_position", "applies only to a whole-ledger verification")
        f.done()
        report = verify_integrity(self.app, number, request.up_to_position)
        return pb.VerifyIntegrityResponse(
            ok=report.ok,
            events_checked=report.events_checked,
            first_bad_position=report.first_bad_position,
            head_digest=report.head_digest,
            head_position=report.head_position,
            problem=report.problem,
        )

    def VerifyReadModels(
        self, request: pb.VerifyReadModelsRequest, context: grpc.ServicerContext
    ) -> pb.VerifyReadModelsResponse:
        """Replay numbers' events in memory and compare the result with what the read models hold."""
        f = Fields()
        number = f.msisdn("number", request.number) if request.number else ""
        if number and request.sample:
            f.add("sample", "applies only to an audit of every number")
        f.done()
        if self.auditor is None:
            raise NotImplementedError
        report = self.auditor.audit([number] if number else None, sample=request.sample, active=context.is_active)
        return pb.VerifyReadModelsResponse(
            ok=report.ok,
            numbers_checked=report.numbers_checked,
            as_of_position=report.as_of_position,
            mismatches=[
                pb.ReadModelMismatch(number=m.number, field=m.field, stored=m.stored, replayed=m.replayed)
                for m in report.mismatches
            ],
        )

    def StreamEvents(
        self, request: pb.StreamEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamEventsResponse]:
        """Catch up from ``from_position``, then follow new events until the caller goes away."""
        if request.from_position > MAX_POSITION:
            raise errors.InvalidArgument([("from_position", f"must be at most {MAX_POSITION}")])
        if not self._feeds.acquire(blocking=False):
            raise errors.ResourceExhausted(f"at most {self.max_feeds} StreamEvents calls at once; retry later")
        try:
            for item in self.feed.follow(max(request.from_position, 1) - 1, context.is_active):
                yield pb.StreamEventsResponse(event=ledger_event(item))
        finally:
            self._feeds.release()
