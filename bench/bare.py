"""The bare servers: the ledger's services and messages answered with no work (the ceiling of a call), on
the sync server and on grpc.aio; the suite's ceiling is the faster of the two."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from bench.bench_commands import free_port
from ledger.v1 import (
    ledger_pb2,
    lifecycle_service_pb2_grpc,
    recycling_service_pb2_grpc,
)
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb

ROOT = Path(__file__).resolve().parent.parent
MAX_WORKERS = 32  # the server's default


# The bare server: the same services and messages, no work.


class _BareLifecycle(lifecycle_service_pb2_grpc.LifecycleServiceServicer):
    def ActivateSim(self, request: Any, context: grpc.ServicerContext) -> Any:
        return lpb.ActivateSimResponse(tenure_id="00000000-0000-0000-0000-000000000000", position=1)


class _BareRecycling(recycling_service_pb2_grpc.RecyclingServiceServicer):
    def GetSimSwap(self, request: Any, context: grpc.ServicerContext) -> Any:
        response = rpb.GetSimSwapResponse(as_of_position=1)
        response.latest_sim_change_at.seconds = response.monitored_since.seconds = 1_700_000_000
        return response

    def CheckSimSwap(self, request: Any, context: grpc.ServicerContext) -> Any:
        return rpb.CheckSimSwapResponse(swapped=False, as_of_position=1)

    def BatchCheckSimSwap(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for request in request_iterator:
            answered = rpb.SIM_SWAP_ANSWER_ANSWERED
            results = [rpb.SimSwapResult(number=q.number, answer=answered) for q in request.queries]
            yield rpb.BatchCheckSimSwapResponse(results=results, as_of_position=1)

    def BatchCheck(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for request in request_iterator:
            yield rpb.BatchCheckResponse(
                results=[
                    ledger_pb2.CheckResult(
                        number=q.number,
                        status=ledger_pb2.CHECK_STATUS_NOT_CHANGED,
                        clearance=ledger_pb2.CLEARANCE_NOT_APPLICABLE,
                        as_of_position=1,
                    )
                    for q in request.queries
                ]
            )


class _AioBareLifecycle(lifecycle_service_pb2_grpc.LifecycleServiceServicer):
    async def ActivateSim(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return _BareLifecycle().ActivateSim(request, context)  # type: ignore[arg-type]


class _AioBareRecycling(recycling_service_pb2_grpc.RecyclingServiceServicer):
    async def GetSimSwap(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return _BareRecycling().GetSimSwap(request, context)  # type: ignore[arg-type]

    async def CheckSimSwap(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return _BareRecycling().CheckSimSwap(request, context)  # type: ignore[arg-type]

    async def BatchCheckSimSwap(  # type: ignore[override]
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        async for request in request_iterator:
            answered = rpb.SIM_SWAP_ANSWER_ANSWERED
            results = [rpb.SimSwapResult(number=q.number, answer=answered) for q in request.queries]
            yield rpb.BatchCheckSimSwapResponse(results=results, as_of_position=1)

    async def BatchCheck(  # type: ignore[override]
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        async for request in request_iterator:
            yield rpb.BatchCheckResponse(
                results=[
                    ledger_pb2.CheckResult(
                        number=q.number,
                        status=ledger_pb2.CHECK_STATUS_NOT_CHANGED,
                        clearance=ledger_pb2.CLEARANCE_NOT_APPLICABLE,
                        as_of_position=1,
                    )
                    for q in request.queries
                ]
            )


KINDS = ("sync", "aio")


def serve_bare(port: int, kind: str = "sync") -> None:
    """Run the bare server until SIGTERM (``--bare-server PORT --bare-kind sync|aio``): the sync server on
    a pool of the ledger's size, or grpc.aio with the same methods as coroutines."""
    if kind == "aio":
        asyncio.run(_serve_aio(port))
        return
    server = grpc.server(futures.ThreadPoolExecutor(MAX_WORKERS))
    lifecycle_service_pb2_grpc.add_LifecycleServiceServicer_to_server(_BareLifecycle(), server)
    recycling_service_pb2_grpc.add_RecyclingServiceServicer_to_server(_BareRecycling(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    server.stop(1)


async def _serve_aio(port: int) -> None:
    server = grpc.aio.server()
    lifecycle_service_pb2_grpc.add_LifecycleServiceServicer_to_server(_AioBareLifecycle(), server)
    recycling_service_pb2_grpc.add_RecyclingServiceServicer_to_server(_AioBareRecycling(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    await server.stop(1)


def start_bare(kind: str = "sync") -> tuple[subprocess.Popen[str], str]:
    """Start the bare server of ``kind`` in its own process; returns it and its address."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench", "--bare-server", str(port), "--bare-kind", kind],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=30)
    channel.close()
    return proc, f"127.0.0.1:{port}"
