"""RecyclingService's SIM swap RPCs (CAMARA SIM Swap: retrieve-date, check, and checks in batches),
answered from the sim_swaps view; a base of ``RecyclingServicer``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import grpc

from ledger.domain import errors
from ledger.server.limits import Turns, caller_key
from ledger.server.validation import MAX_QUERIES_PER_BATCH, Fields
from ledger.server.wire import set_timestamp
from ledger.v1 import recycling_service_pb2 as pb
from projections import simswap
from projections.errors import ReadModelBehind, ReadModelMismatch
from projections.views import us

if TYPE_CHECKING:
    from ledger.server.bridge import Blocking
    from projections.queries import ReadModels

T = TypeVar("T")


class SimSwapRpcs:
    """GetSimSwap, CheckSimSwap and BatchCheckSimSwap (a base of ``RecyclingServicer``, which holds the
    read models and decides what an answer stands on for these and the recycling checks alike)."""

    read_models: ReadModels
    now: Callable[[], datetime]
    turns: Turns
    blocking: Blocking

    if TYPE_CHECKING:  # defined in RecyclingServicer, shared with the recycling checks

        def _read(self, read: Callable[[], T]) -> T: ...

        def _standing(self, as_of: int) -> int: ...

        def _await(self, position: int, context: grpc.ServicerContext) -> None: ...

    def GetSimSwap(self, request: pb.GetSimSwapRequest, context: grpc.ServicerContext) -> pb.GetSimSwapResponse:
        """When the number's SIM last changed (CAMARA SIM Swap retrieve-date)."""
        f = Fields()
        number = f.msisdn("number", request.number)
        f.done()
        position, row = self._sim_swap_row(number, request.min_position, context)
        response = pb.GetSimSwapResponse(as_of_position=position)
        set_timestamp(response.latest_sim_change_at, simswap.latest_sim_change(row))
        set_timestamp(response.monitored_since, row.monitored_since_us)
        return response

    def CheckSimSwap(self, request: pb.CheckSimSwapRequest, context: grpc.ServicerContext) -> pb.CheckSimSwapResponse:
        """Whether the number's SIM changed within the last ``max_age_hours`` (CAMARA SIM Swap check)."""
        f = Fields()
        number = f.msisdn("number", request.number)
        hours = _max_age(f, "max_age_hours", request.max_age_hours)
        f.done()
        position, row = self._sim_swap_row(number, request.min_position, context)
        now_us = us(self.now())
        return pb.CheckSimSwapResponse(swapped=simswap.swapped_within(row, now_us, hours), as_of_position=position)

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
        queries = [
            (
                f.msisdn(f"queries[{i}].number", q.number),
                _max_age(f, f"queries[{i}].max_age_hours", q.max_age_hours),
            )
            for i, q in enumerate(request.queries)
        ]
        f.done()
        position, rows = self._read(lambda: self.read_models.sim_swap_rows([n for n, _ in queries]))
        self._standing(position)
        now_us = us(self.now())
        response = pb.BatchCheckSimSwapResponse(as_of_position=position)
        for number, hours in queries:
            row = rows.get(number)
            result = response.results.add(number=number)
            if row is None:
                result.answer = pb.SIM_SWAP_ANSWER_UNKNOWN_NUMBER
            elif row is simswap.UNTRUSTED:
                result.answer = pb.SIM_SWAP_ANSWER_READ_MODEL_MISMATCH
            elif row.ported_out_us is not None:
                result.answer = pb.SIM_SWAP_ANSWER_PORTED_OUT
            else:
                result.answer = pb.SIM_SWAP_ANSWER_ANSWERED
                result.swapped = simswap.swapped_within(row, now_us, hours)
                set_timestamp(result.latest_sim_change_at, simswap.latest_sim_change(row))
        return response

    def _sim_swap_row(
        self, number: str, min_position: int, context: grpc.ServicerContext
    ) -> tuple[int, simswap.SimSwapRow]:
        if min_position:
            self._await(min_position, context)
        position, row = self._read(lambda: self.read_models.sim_swap_row(number))
        self._standing(position)
        if position < min_position:  # the wait follows the numbers view; this answer is the sim_swaps view's
            raise ReadModelBehind(min_position, position)
        if row is None:
            raise errors.NumberNotFound(number)
        if row is simswap.UNTRUSTED:
            raise ReadModelMismatch(
                "this number's read model row does not authenticate (edited or deleted behind the server's "
                "back); it is answered again once `ledger audit-views --repair` rewrites it"
            )
        if row.ported_out_us is not None:  # the SIM is the recipient operator's now
            raise errors.NumberPortedOut(f"number {number} was ported out: its SIM is served by another operator")
        return position, row


def _max_age(f: Fields, field: str, value: int) -> int:
    """CAMARA maxAge in hours: 1 to 2400, 240 when unset (proto3 cannot tell 0 from unset)."""
    hours = value or simswap.DEFAULT_AGE_HOURS
    if not simswap.MIN_AGE_HOURS <= hours <= simswap.MAX_AGE_HOURS:
        f.add(field, f"must be {simswap.MIN_AGE_HOURS} to {simswap.MAX_AGE_HOURS} hours")
        f.out_of_range[field] = "OUT_OF_RANGE"
    return hours
