"""HistoryService: a number's history and its state at a point in time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc

from ledger.application.disconnections import MAX_PAGE, issued_reports, permanent_disconnections
from ledger.application.reads import number_history, number_state
from ledger.application.trace import request_events
from ledger.application.verification import keyless_registrations, verify_integrity, with_keyless
from ledger.domain import errors
from ledger.server.auth import actor_of
from ledger.server.convert import DISCONNECT_VALUES, ledger_event, number_state_message
from ledger.server.feeds import AsyncFeed, CommitSignal
from ledger.server.heads import HeadPublisher, ProofsUnavailable, head_message, proven_history
from ledger.server.limits import Turns, caller_key
from ledger.server.validation import Fields
from ledger.v1 import history_service_pb2 as pb
from ledger.v1 import history_service_pb2_grpc

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from ledger.application.reads import HistoryItem
    from ledger.proofs.heads import SignedHead
    from ledger.server.bridge import Blocking
    from ledger.server.limits import Budget
    from ledger.server.status import StatusReport
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
        publisher: HeadPublisher | None = None,
        stopping: Callable[[], bool] = lambda: False,
        status: StatusReport | None = None,
    ) -> None:
        self.app = app
        self.status = status
        self.auditor = auditor
        self.publisher = publisher
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
        if request.head_size and not request.with_proofs:
            f.add("head_size", "applies only with with_proofs")
        if request.head_size > MAX_POSITION:
            f.add("head_size", f"must be at most {MAX_POSITION}")
        f.done()
        actor = actor_of(context)

        def read() -> list[pb.GetNumberHistoryResponse]:
            head = self._head(request.head_size) if request.with_proofs else None
            items = number_history(self.app, number, request.include_personal_data, actor, purpose, request.legal_hold)
            if head is None:
                return [pb.GetNumberHistoryResponse(event=ledger_event(item)) for item in items]
            return list(
                proven_history(self._publisher().store, head, [i for i in items if i.position <= head.size], self.app)
            )

        for response in await self.blocking.run(read):
            yield response

    def GetSignedHead(
        self, request: pb.GetSignedHeadRequest, context: grpc.ServicerContext
    ) -> pb.GetSignedHeadResponse:
        """The latest signed head, the one signed at ``size``, or (``fresh``) one signed now."""
        if request.size and request.fresh:
            raise errors.InvalidArgument([("fresh", "a fresh head is signed at the current size; give no size")])
        if request.size > MAX_POSITION:
            raise errors.InvalidArgument([("size", f"must be at most {MAX_POSITION}")])
        publisher = self._publisher()
        head = publisher.sign_now() if request.fresh else self._head(request.size)
        return pb.GetSignedHeadResponse(signed_head=head_message(head))

    def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> pb.GetConsistencyProofResponse:
        """The RFC 9162 proof that the tree at ``to_size`` extends the tree at ``from_size``."""
        store = self._publisher().store
        size = store.tree_size()
        f = Fields()
        if not 1 <= request.from_size <= size:
            f.add("from_size", f"must be between 1 and the tree's size {size}")
        if not request.from_size <= request.to_size <= size:
            f.add("to_size", f"must be between from_size and the tree's size {size}")
        f.done()
        old, new = request.from_size, request.to_size
        return pb.GetConsistencyProofResponse(hashes=store.consistency(old, new))

    def GetStatus(self, request: pb.GetStatusRequest, context: grpc.ServicerContext) -> pb.GetStatusResponse:
        """The head, the signed head, each read model's progress, the store and the policy in force."""
        if self.status is None:
            raise NotImplementedError
        return self.status.response()

    async def TraceRequest(
        self, request: pb.TraceRequestRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TraceRequestResponse]:
        """Stream the events one request recorded, in ledger order; NOT_FOUND when none was recorded."""
        f = Fields()
        request_id = f.request_id(request.request_id)
        f.done()
        items = await self.blocking.run(lambda: request_events(self.app, request_id))
        if items is None:
            raise errors.RequestNotFound(request_id)
        for item in items:
            yield pb.TraceRequestResponse(event=ledger_event(item))

    def _publisher(self) -> HeadPublisher:
        if self.publisher is None:
            raise ProofsUnavailable("this server signs no heads")
        return self.publisher

    def _head(self, size: int) -> SignedHead:
        """The head signed at ``size`` (NOT_FOUND when none was), or the latest, signed now when none covers
        the whole ledger."""
        publisher = self._publisher()
        if size:
            head = publisher.store.head(size)
            if head is None:
                raise errors.NotFound(f"signed head at size {size}")
            return head
        head = publisher.store.head()
        if head is None or head.size < self.app.reader.max_position():
            head = publisher.sign_now()
        return head

    def ListDisconnectionReports(
        self, request: pb.ListDisconnectionReportsRequest, context: grpc.ServicerContext
    ) -> pb.ListDisconnectionReportsResponse:
        """The disconnection reports issued for a jurisdiction, oldest first, and the policy's time zone."""
        f = Fields()
        jurisdiction = f.calling_code("jurisdiction", request.jurisdiction)
        f.done()
        response = pb.ListDisconnectionReportsResponse(timezone=self.app.policy.timezone)
        for report in issued_reports(self.app, jurisdiction):
            message = response.reports.add(
                month=report.month,
                from_position=report.from_position,
                to_position=report.to_position,
                carry_from=report.carry_from,
                rows=report.rows,
                digest=report.digest,
            )
            message.period_end.FromDatetime(report.period_end)
            message.issued_at.FromDatetime(report.issued_at)
        return response

    def ListDisconnections(
        self, request: pb.ListDisconnectionsRequest, context: grpc.ServicerContext
    ) -> pb.ListDisconnectionsResponse:
        """One page of the permanent disconnections of a jurisdiction's numbers recorded in a position range."""
        f = Fields()
        jurisdiction = f.calling_code("jurisdiction", request.jurisdiction)
        start = f.position("from_position", request.from_position)
        end = f.position("to_position", request.to_position)
        if start > end:
            f.add("to_position", "must be at least from_position")
        if request.page_size > MAX_PAGE:
            f.add("page_size", f"must be at most {MAX_PAGE}")
        f.done()
        found, read_to = permanent_disconnections(self.app, jurisdiction, start, end, request.page_size or MAX_PAGE)
        response = pb.ListDisconnectionsResponse(read_to=read_to)
        for d in found:
            message = response.disconnections.add(
                number=d.number,
                position=d.position,
                reason=DISCONNECT_VALUES[d.reason],  # type: ignore[arg-type]
            )
            message.occurred_at.FromDatetime(d.occurred_at)
        return response

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
        public = self.publisher.signer.public if self.publisher is not None else None
        report = verify_integrity(self.app, number, request.up_to_position, public)
        if not number and not request.up_to_position:
            report = with_keyless(report, keyless_registrations(self.app.reader, self.app.vault.store))
        return pb.VerifyIntegrityResponse(
            ok=report.ok,
            events_checked=report.events_checked,
            first_bad_position=report.first_bad_position,
            head_digest=report.head_digest,
            head_position=report.head_position,
            problem=report.problem,
            stream=report.stream,
            signed_head_size=report.signed_head_size,
            keyless_registrations=[
                pb.KeylessRegistration(position=position, subscriber_id=sid)
                for position, sid in report.keyless_registrations
            ],
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
