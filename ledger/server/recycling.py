"""RecyclingService: recycling checks and clearance, answered from the read models, and what every answer
stands on (waits, the ledger's head, the policy's lag); the SIM swap RPCs are in ``simswap``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from ledger.domain import errors
from ledger.server.bridge import defer
from ledger.server.limits import Turns, caller_key
from ledger.server.simswap import SimSwapRpcs
from ledger.server.validation import MAX_QUERIES_PER_BATCH, Fields
from ledger.server.wire import CLEARANCE, check_result, encode_results, set_timestamp
from ledger.v1 import ledger_pb2, recycling_service_pb2_grpc
from ledger.v1 import recycling_service_pb2 as pb
from projections.errors import ReadModelBehind, ReadModelMismatch, ReadModelRebuilding
from projections.recycling import Decision, day_bounds, decide

if TYPE_CHECKING:
    from ledger.policy import Policy
    from ledger.server.bridge import Blocking
    from ledger.server.limits import Budget
    from ledger.server.progress import Progress
    from projections.queries import ReadModels

T = TypeVar("T")
# BatchCheck requests of one stream read and not yet answered (checked while the previous one is sent).
AHEAD = 2
# How long a check may wait for the read model when the caller set no deadline.
DEFAULT_WAIT_SECONDS = 5.0


def _serialize(response: bytes | Any) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


class _Recorder:
    """Stands in for a server to the generated registration, keeping the handlers it registers."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, _handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, _name: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.handlers = dict(handlers)


def add_to_server(servicer: RecyclingServicer, server: grpc.aio.Server) -> None:
    """Register the service as the generated ``add_RecyclingServiceServicer_to_server`` does (every method
    of the service, those added later too), except that BatchCheck's responses arrive already encoded
    (see ``encode_results``)."""
    recorder = _Recorder()
    recycling_service_pb2_grpc.add_RecyclingServiceServicer_to_server(servicer, recorder)  # type: ignore[arg-type]
    handlers = recorder.handlers
    handlers["BatchCheck"] = handlers["BatchCheck"]._replace(response_serializer=_serialize)
    name = pb.DESCRIPTOR.services_by_name["RecyclingService"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)  # type: ignore[attr-defined]


class RecyclingServicer(SimSwapRpcs, recycling_service_pb2_grpc.RecyclingServiceServicer):
    """Answers "did this number change hands since this date, and was the old owner's data cleared"."""

    def __init__(
        self,
        read_models: ReadModels,
        policy: Policy,
        progress: Progress,
        blocking: Blocking,
        waits: Budget | None = None,
        turns: Turns | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.read_models = read_models
        # What "today" and "now" are for since_date and max_age_hours: the wall clock unless given.
        self.now = clock or (lambda: datetime.now(UTC))
        # One caller's streams together run this many requests on the pool at once.
        self.turns = turns or Turns(2)
        self.blocking = blocking
        self.waits = waits
        self.policy = policy
        self.zone = policy.zone
        self.progress = progress

    def CheckNumber(self, request: pb.CheckNumberRequest, context: grpc.ServicerContext) -> pb.CheckNumberResponse:
        """Check one number."""
        f = Fields()
        number = f.msisdn("number", request.number)
        since = f.past_day("since_date", request.since_date, self._today())
        f.done()
        if request.min_position:
            self._await(request.min_position, context)
        answer = self._read(lambda: self.read_models.check([(number, since)], self.zone))[0]
        if answer.no_data_reason == "READ_MODEL_MISMATCH":
            raise ReadModelMismatch(
                "this number's read model row does not authenticate (edited or deleted behind the server's "
                "back); it is answered again once `ledger audit-views --repair` rewrites it"
            )
        return pb.CheckNumberResponse(result=check_result(answer, self._standing(answer.as_of_position)))

    async def BatchCheck(
        self, request_iterator: AsyncIterator[pb.BatchCheckRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """One response per request, results in the order asked (each an encoded BatchCheckResponse).

        At most ``AHEAD`` requests are read and not yet answered: the next one is read while the last
        is checked or sent (so reading, checking and sending overlap), and no further. A client that
        stops reading stops the work done for it (a send waits for the transport's flow control), and a
        stream holds ``AHEAD`` requests and responses at most."""
        blocking, key = self.blocking, caller_key(context)
        slots = asyncio.Semaphore(AHEAD)
        answers: asyncio.Queue[asyncio.Task[bytes] | BaseException | None] = asyncio.Queue()

        async def answer(queries: Sequence[ledger_pb2.CheckQuery]) -> bytes:
            async with self.turns.turn(key):
                return await blocking.run(self._answer, queries)

        async def read() -> None:
            try:
                requests = request_iterator.__aiter__()
                while True:
                    await slots.acquire()
                    try:
                        request = await requests.__anext__()
                    except StopAsyncIteration:
                        answers.put_nowait(None)
                        return
                    answers.put_nowait(asyncio.ensure_future(answer(request.queries)))
            except BaseException as e:  # the stream's end (idle, malformed, cancelled) reaches the caller
                answers.put_nowait(e)

        reader = asyncio.ensure_future(read())
        pending: list[asyncio.Task[bytes]] = []
        try:
            while True:
                item = await answers.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                pending.append(item)
                response = await item
                pending.remove(item)
                yield response
                slots.release()
        finally:
            reader.cancel()
            for task in pending:
                task.cancel()
            while not answers.empty():
                left = answers.get_nowait()
                if isinstance(left, asyncio.Task):
                    left.cancel()

    def _answer(self, queries: Sequence[ledger_pb2.CheckQuery]) -> bytes:
        position, decisions = self._read(lambda: self._decide(queries))
        return encode_results(decisions, position, self._standing(position))

    def _decide(self, queries: Sequence[ledger_pb2.CheckQuery]) -> tuple[int, list[tuple[str, Decision]]]:
        f = Fields()
        if len(queries) > MAX_QUERIES_PER_BATCH:
            f.add("queries", f"at most {MAX_QUERIES_PER_BATCH} queries per request")
            f.done()
        numbers = [q.number for q in queries]
        # Numbers are looked up as given first: those the ledger knows were validated when provisioned, so
        # only the others are parsed (and looked up again in canonical form when that differs).
        position, rows = self.read_models.check_rows(numbers)
        again: list[int] = []
        for i, row in enumerate(rows):
            if row is None:
                parsed = f.msisdn(f"queries[{i}].number", numbers[i])
                if parsed != numbers[i]:
                    numbers[i] = parsed
                    again.append(i)
        if again:
            _, more = self.read_models.check_rows([numbers[i] for i in again])
            for i, row in zip(again, more, strict=True):
                rows[i] = row
        days: dict[str, tuple[int, int] | None] = {}
        sinces = [q.since_date for q in queries]
        today = self._today()
        for i, since in enumerate(sinces):
            if since not in days:
                day = f.past_date(f"queries[{i}].since_date", since, today)
                days[since] = None if day is None else day_bounds(day, self.zone)
            elif days[since] is None:
                f.past_date(f"queries[{i}].since_date", since, today)
        f.done()
        return position, [
            (n, decide(row, days[since]))  # type: ignore[arg-type]
            for n, since, row in zip(numbers, sinces, rows, strict=True)
        ]

    def GetClearance(self, request: pb.GetClearanceRequest, context: grpc.ServicerContext) -> pb.GetClearanceResponse:
        """Clearance of each closed tenure of a number."""
        f = Fields()
        number = f.msisdn("number", request.number)
        f.done()
        row = self._read(lambda: self.read_models.numbers([number])).get(number)
        if row is None:
            raise errors.NumberNotFound(number)
        response = pb.GetClearanceResponse(number=number)
        for t in row.tenures:
            if t.disconnected_us is None:
                continue
            item = response.tenures.add(
                tenure_id=_uuid(t.tenure_id),
                subscriber_id=_uuid(t.subscriber_id),
                clearance=CLEARANCE[t.clearance],
                required_holders=t.required_holders,
                outstanding_holders=t.outstanding_holders,
                override_reason=t.override_reason,
            )
            set_timestamp(item.disconnected_at, t.disconnected_us)
            set_timestamp(item.quarantine_until, t.quarantine_until_us)
            set_timestamp(item.released_at, t.released_us)
            for holder, evidence_ref, at in t.confirmations:
                confirmation = item.confirmations.add(holder=holder, evidence_ref=evidence_ref)
                set_timestamp(confirmation.confirmed_at, at)
        return response

    def _today(self) -> date:
        return self.now().astimezone(self.zone).date()

    def _read(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except ReadModelRebuilding as e:
            e.head = self.progress.head
            raise

    def _standing(self, as_of: int) -> int:
        """The head an answer at ``as_of`` stands beside; refuses answers the ledger does not support:
        views beyond the ledger's head (a restored ledger), or older than the policy allows."""
        head = self.progress.head
        if as_of > head:
            head = self.progress.refresh_head()
            if as_of > head:
                raise ReadModelMismatch(
                    f"the read models are at position {as_of}, beyond the ledger's head {head} (a restored or "
                    "another ledger); rebuild them with `ledger project --rebuild`"
                )
        limit = self.policy.max_check_lag_seconds
        if limit:
            lag = self.progress.lag_seconds(as_of)
            if lag > limit:
                raise ReadModelBehind(
                    head,
                    as_of,
                    f"the read model is {lag:.1f}s behind the ledger (position {as_of} of {head}; policy "
                    f"max_check_lag_seconds {limit}); retry",
                )
        return head

    def _await(self, position: int, context: grpc.ServicerContext) -> None:
        """Return once the numbers view has applied ``position``; otherwise hand the wait to the loop (the
        bridge awaits it, holding no thread, and runs the method again, which then returns here). Raises
        ``ReadModelBehind`` when the wait ends first: a little before the caller's deadline (so that the
        caller reads why rather than DEADLINE_EXCEEDED), after ``DEFAULT_WAIT_SECONDS`` without one, or when
        the server stops."""
        if self.progress.views_position >= position:
            return
        remaining = context.time_remaining()
        if remaining is None:
            timeout = DEFAULT_WAIT_SECONDS
        else:
            timeout = max(0.0, remaining - min(0.25, max(0.02, remaining * 0.1)))
        key = caller_key(context)

        async def wait() -> None:
            # The call's cancellation (client gone, deadline passed) ends this wait at once.
            release = self.waits.take(key) if self.waits else None
            try:
                if not await self.progress.wait_async(position, timeout):
                    raise ReadModelBehind(position, self.progress.views_position)
            finally:
                if release:
                    release()

        defer(context, wait)
        # Run again after the wait saw the position applied, yet it is not now (the view was rebuilt).
        raise ReadModelBehind(position, self.progress.views_position)


def _uuid(hex_id: str) -> str:
    return f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"
