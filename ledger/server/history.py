"""HistoryService: a number's history and its state at a point in time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc

from ledger.application.reads import number_history, number_state, verify_integrity
from ledger.domain import errors
from ledger.server.auth import actor_of
from ledger.server.convert import ledger_event, number_state_message
from ledger.server.feeds import AsyncFeed, CommitSignal
from ledger.server.limits import Turns, caller_key
from ledger.server.validation import Fields
from ledger.v1 import history_service_pb2 as pb
from ledger.v1 import history_service_pb2_grpc

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from ledger.application.reads import HistoryItem
    from ledger.server.bridge import Blocking
    from ledger.server.limits import Budget
    from projections.audit import Auditor

# Positions are stored as signed 64-bit integers.
MAX_POSITION = 2**63 - 1


class HistoryServicer(history_service_pb2_grpc.HistoryServiceServicer):
    """The compliance-facing read API."""

    def __init__(
        self,
        app: LedgerApplication,
        blocking: Blocking,
        feeds: Budget | None = None,
        turns: Turns | None = None,
        auditor: Auditor | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.app = app
        self.auditor = auditor
        self.blocking = blocking
        # Feeds hold no thread while they follow the ledger, but each reads its batches on the pool.
        self.feeds = feeds
        self.turns = turns or Turns(2)
        self.stopping = stopping
        self.feed = AsyncFeed(app)
        self.commits = CommitSignal()
        app.commit_listeners.append(self.commits)

    async def GetNumberHistory(
        self, request: pb.GetNumberHistoryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GetNumberHistoryResponse]:
        """Stream a number's history in ledger order."""
        f = Fields()
        number = f.msisdn("number", request.number)
        purpose = ""
        if request.include_personal_data:
            purpose = f.text("purpose", request.purpose, 500)
        f.done()
        actor = actor_of(context)

        def read() -> list[pb.GetNumberHistoryResponse]:
            items = number_history(self.app, number, request.include_personal_data, actor, purpose)
            return [pb.GetNumberHistoryResponse(event=ledger_event(item)) for item in items]

        for response in await self.blocking.run(read):
            yield response

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

    async def StreamEvents(
        self, request: pb.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamEventsResponse]:
        """Catch up from ``from_position``, then follow new events until the caller goes away."""
        if request.from_position > MAX_POSITION:
            raise errors.InvalidArgument([("from_position", f"must be at most {MAX_POSITION}")])
        release = self.feeds.take(caller_key(context)) if self.feeds else None
        try:
            last = max(request.from_position, 1) - 1
            key = caller_key(context)
            follow = self.feed.follow_async(
                last, _feed_response, self.blocking, self.commits, self.stopping, lambda: self.turns.turn(key)
            )
            async for response in follow:
                yield response
        finally:
            if release:
                release()


def _feed_response(item: HistoryItem) -> pb.StreamEventsResponse:
    return pb.StreamEventsResponse(event=ledger_event(item))
