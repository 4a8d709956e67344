"""RecyclingService: recycling checks, clearance and SIM swap answers. The servicer translates: it
validates a request, calls the answer's composition in ``projections.answers`` (the one the HTTP routes
call too), and writes the result on the wire (``wire``); it also decides what every answer stands on
(a ``min_position`` wait, the ledger's head, the policy's lag)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import grpc

from ledger.domain import errors
from ledger.server.bridge import defer
from ledger.server.limits import Turns, caller_key
from ledger.server.validation import MAX_QUERIES_PER_BATCH, Fields
from ledger.server.wire import CLEARANCE, SIM_SWAP_ANSWERS, check_result, encode_results, set_timestamp
from ledger.v1 import ledger_pb2, recycling_service_pb2_grpc
from ledger.v1 import recycling_service_pb2 as pb
from projections import simswap
from projections.answers import Answers, Checks, check_numbers, sim_swap_answers
from projections.errors import ReadModelBehind
from projections.views import us

if TYPE_CHECKING:
    from ledger.policy import Policy
    from ledger.server.bridge import Blocking
    from ledger.server.limits import Budget
    from ledger.server.progress import Progress
    from projections.queries import ReadModels

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


class RecyclingServicer(recycling_service_pb2_grpc.RecyclingServiceServicer):
    """Answers "did this number change hands since this date, and was the old owner's data cleared", and
    "when did this number's SIM last change" (CAMARA Number Recycling and SIM Swap)."""

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
        # What every answer stands on, shared with the HTTP routes.
        self.answers = Answers(read_models, policy, progress, self.now)

    def CheckNumber(self, request: pb.CheckNumberRequest, context: grpc.ServicerContext) -> pb.CheckNumberResponse:
        """Check one number."""
        f = Fields()
        number = f.msisdn("number", request.number)
        since = f.past_day("since_date", request.since_date, self.answers.today())
        f.done()
        if request.min_position:
            self._await(request.min_position, context)
        head, position, decision = self.answers.check_one(number, since)
        return pb.CheckNumberResponse(result=check_result(number, decision, position, head))

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
        checks = self.answers.read(lambda: self._check(queries))
        self.answers.counted([d.status for d in checks.decisions])
        return encode_results(checks, self.answers.head_for(checks.as_of_position))

    def _check(self, queries: Sequence[ledger_pb2.CheckQuery]) -> Checks:
        f = Fields()
        if len(queries) > MAX_QUERIES_PER_BATCH:
            f.add("queries", f"at most {MAX_QUERIES_PER_BATCH} queries per request")
            f.done()
        sinces = [q.since_date for q in queries]
        today = self.answers.today()
        dates = _past_days(f, sinces, today)
        if f.violations:
            Fields.refuse_batch([q.number for q in queries], lambda g: _past_days(g, sinces, today))
        checks = check_numbers(
            self.read_models,
            [q.number for q in queries],
            dates,
            self.zone,
            canonical=lambda i, number: f.msisdn(f"queries[{i}].number", number),
        )
        f.done()
        return checks

    def GetClearance(self, request: pb.GetClearanceRequest, context: grpc.ServicerContext) -> pb.GetClearanceResponse:
        """Clearance of each closed tenure of a number."""
        f = Fields()
        number = f.msisdn("number", request.number)
        f.done()
        row = self.answers.read(lambda: self.read_models.numbers([number])).get(number)
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

    def GetSimSwap(self, request: pb.GetSimSwapRequest, context: grpc.ServicerContext) -> pb.GetSimSwapResponse:
        """When the number's SIM last changed (CAMARA SIM Swap retrieve-date)."""
        f = Fields()
        number = f.msisdn("number", request.number)
        f.done()
        position, found = self._sim_swap(number, simswap.DEFAULT_AGE_HOURS, request.min_position, context)
        response = pb.GetSimSwapResponse(as_of_position=position)
        set_timestamp(response.latest_sim_change_at, found.latest_sim_change_us)
        set_timestamp(response.monitored_since, found.monitored_since_us)
        return response

    def CheckSimSwap(self, request: pb.CheckSimSwapRequest, context: grpc.ServicerContext) -> pb.CheckSimSwapResponse:
        """Whether the number's SIM changed within the last ``max_age_hours`` (CAMARA SIM Swap check)."""
        f = Fields()
        number = f.msisdn("number", request.number)
        hours = f.max_age_hours("max_age_hours", request.max_age_hours)
        f.done()
        position, found = self._sim_swap(number, hours, request.min_position, context)
        return pb.CheckSimSwapResponse(swapped=found.swapped, as_of_position=position)

    async def BatchCheckSimSwap(
        self, request_iterator: AsyncIterator[pb.BatchCheckSimSwapRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BatchCheckSimSwapResponse]:
        """CheckSimSwap for many numbers; one response per request, results in the order asked. A number
        that CheckSimSwap refuses (unknown, ported out) is answered as such, not failing the batch. The next
        request is awaited on the loop and each is answered on the pool, one at a time: a client that stops
        reading stops the work done for it."""
        key = caller_key(context)
        async for request in request_iterator:
            async with self.turns.turn(key):
                response = await self.blocking.run(self._sim_swap_batch, request)
            yield response

    def _sim_swap_batch(self, request: pb.BatchCheckSimSwapRequest) -> pb.BatchCheckSimSwapResponse:
        f = Fields()
        if len(request.queries) > MAX_QUERIES_PER_BATCH:
            f.add("queries", f"at most {MAX_QUERIES_PER_BATCH} queries per request")
            f.done()
        queries = request.queries

        def ages(g: Fields) -> list[int]:
            return [g.max_age_hours(f"queries[{i}].max_age_hours", q.max_age_hours) for i, q in enumerate(queries)]

        hours = ages(f)
        if f.violations:
            Fields.refuse_batch([q.number for q in queries], ages)
        # Numbers the view holds as given were validated when provisioned: only the others cost a parse.
        answers = self.answers.read(
            lambda: sim_swap_answers(
                self.read_models,
                [q.number for q in queries],
                hours,
                us(self.answers.now()),
                canonical=lambda i, number: f.msisdn(f"queries[{i}].number", number),
            )
        )
        f.done()
        self.answers.head_for(answers.as_of_position)
        response = pb.BatchCheckSimSwapResponse(as_of_position=answers.as_of_position)
        for number, found in zip(answers.numbers, answers.answers, strict=True):
            result = response.results.add(number=number, answer=SIM_SWAP_ANSWERS[found.answer])
            if found.answer == simswap.ANSWERED:
                result.swapped = found.swapped
                set_timestamp(result.latest_sim_change_at, found.latest_sim_change_us)
        return response

    def _sim_swap(
        self, number: str, hours: int, min_position: int, context: grpc.ServicerContext
    ) -> tuple[int, simswap.SimSwapAnswer]:
        """One number's SIM swap answers; a number they cannot be given for is refused as the error it is."""
        if min_position:
            self._await(min_position, context)
        return self.answers.sim_swap(number, hours, min_position)

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
            # A fifth of what is left, at most half a second, kept for the answer to reach the caller on a
            # busy machine (a tenth was missed under load: the caller saw DEADLINE_EXCEEDED).
            timeout = max(0.0, remaining - min(0.5, max(0.05, remaining * 0.2)))
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


def _past_days(f: Fields, sinces: Sequence[str], today: date) -> list[date]:
    """Each query's since_date, validated once per distinct value (a bad value once per query)."""
    if sinces and sinces.count(sinces[0]) == len(sinces):  # the common batch: one date for every number
        before = len(f.violations)
        one = f.past_day("queries[0].since_date", sinces[0], today)
        if len(f.violations) > before:
            for i in range(1, len(sinces)):
                f.past_day(f"queries[{i}].since_date", sinces[i], today)
        return [one] * len(sinces)
    valid: dict[str, date] = {}
    days: list[date] = []
    for i, since in enumerate(sinces):
        day = valid.get(since)
        if day is None:
            before = len(f.violations)
            day = f.past_day(f"queries[{i}].since_date", since, today)
            if len(f.violations) == before:
                valid[since] = day
        days.append(day)
    return days


def _uuid(hex_id: str) -> str:
    return f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"
