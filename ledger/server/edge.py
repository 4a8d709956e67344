"""The edge's event loop and the server's sync facade.

gRPC is served by ``grpc.aio`` on one asyncio loop running in a thread of its own (``EdgeLoop``); the
blocking work runs on a bounded pool. ``LedgerServer`` keeps the sync server's shape (``start()``,
``stop(grace).wait()``) so that a caller in plain threads (``serve``, tests, scripts) builds and stops a
server as before. Anything else served later (an HTTP API, a metrics endpoint) is started on the same
loop with ``EdgeLoop.run``/``submit`` and shares its pool; see docs/DESIGN.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent import futures
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import grpc
    from grpc_health.v1._async import HealthServicer

    from ledger.server.heads import HeadPublisher
    from ledger.server.progress import Progress
    from ledger.server.scrape import SharedGauges

log = logging.getLogger(__name__)
T = TypeVar("T")


def new_loop() -> asyncio.AbstractEventLoop:
    """The loop the edge runs on: uvloop's, measured faster here than asyncio's for unary calls (ActivateSim
    at 64 callers +5-15%) and no slower for BatchCheck (docs/performance.md, "The serving edge"); asyncio's
    where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class EdgeLoop:
    """An asyncio loop running in a daemon thread; coroutines are handed to it from any thread."""

    def __init__(self, factory: Callable[[], asyncio.AbstractEventLoop] = new_loop, name: str = "edge") -> None:
        self.loop = factory()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coroutine`` on the loop; its result as a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result."""
        return self.submit(coroutine).result(timeout)

    def close(self) -> None:
        """Stop the loop and wait for its thread (idempotent)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


class Beside(Protocol):
    """A server on the edge's loop beside gRPC (the HTTP port), started and stopped with it."""

    port: int

    async def start(self) -> None:
        """Start serving (on the loop)."""
        ...

    async def stop(self, grace: float | None) -> None:
        """Stop serving (on the loop), letting calls in flight finish."""
        ...


class LedgerServer:
    """The gRPC server and what runs beside it (the loop, the pool, the progress of the read models, the
    HTTP port): starting and stopping it starts and stops them all."""

    def __init__(
        self,
        edge: EdgeLoop,
        server: grpc.aio.Server,
        progress: Progress,
        executor: futures.ThreadPoolExecutor,
        health: HealthServicer,
        on_stop: Callable[[], None] = lambda: None,
        publisher: HeadPublisher | None = None,
        http: Beside | None = None,
        drained: Callable[[], Awaitable[None]] | None = None,
        metrics: Beside | None = None,
        shared_gauges: SharedGauges | None = None,
    ) -> None:
        self.edge, self.server, self.progress, self.executor, self.health = edge, server, progress, executor, health
        self.http = http  # the HTTP port, when served
        self.metrics = metrics  # the metrics port, when served
        self.shared_gauges = shared_gauges  # a worker's gauges, for its parent's metrics port
        self.publisher = publisher  # signs heads at the policy's interval while the server serves
        # Run on the loop when the stop begins (streams that wait on their client end then); ``drained``
        # returns once the calls the stop waits for have returned.
        self.on_stop = on_stop
        self.drained = drained
        self.stopping = False

    def start(self) -> None:
        """Start serving."""
        self.progress.start()
        self.edge.run(self.server.start())
        if self.http is not None:
            self.edge.run(self.http.start())
        if self.metrics is not None:
            self.edge.run(self.metrics.start())
        if self.shared_gauges is not None:
            self.shared_gauges.start()
        if self.publisher is not None:
            self.publisher.start()

    def set_health(self, service: str, status: int) -> None:
        """Report ``service`` as ``status`` to health checks and watches (from any thread)."""
        self.edge.submit(self.health.set(service, status))  # type: ignore[arg-type]

    def enter_graceful_shutdown(self) -> None:
        """Report every service NOT_SERVING from now on (before a stop)."""
        self.edge.run(self.health.enter_graceful_shutdown())

    def stop(self, grace: float | None) -> Stopped:
        """Stop: waits in progress answer at once, feeds end, calls in flight get ``grace`` seconds;
        ``wait()`` on the result returns once every handler has returned, so the stores can then be
        closed safely."""
        self.stopping = True
        self.progress.stop()
        if self.shared_gauges is not None:
            self.shared_gauges.stop()
        if self.publisher is not None:
            self.publisher.stop()
        return Stopped(self.edge.submit(self._stop(grace)), self.executor, self.edge)

    async def _stop(self, grace: float | None) -> None:
        # gRPC ends a call once its status is sent, and a status goes out after the messages queued before
        # it: a stream whose client stopped reading keeps its call (and the stop) until the grace period
        # ends, even once its handler returned. So once the calls the stop waits for are done, the rest
        # are cancelled outright (a reset of their streams needs no room from the client).
        stopped = asyncio.ensure_future(self.server.stop(grace))
        http_stopped = asyncio.ensure_future(self.http.stop(grace)) if self.http is not None else None
        await asyncio.sleep(0)  # the server takes no new call from here on
        self.on_stop()
        if self.drained is not None and grace:
            try:
                async with asyncio.timeout(grace):
                    await self.drained()
            except TimeoutError:
                pass
            await self.server.stop(0)
        await stopped
        if http_stopped is not None:
            await http_stopped
        if self.metrics is not None:  # scraped until the end
            await self.metrics.stop(0)


class Stopped:
    """A server's stop in progress."""

    def __init__(
        self, stopped: concurrent.futures.Future[None], executor: futures.ThreadPoolExecutor, edge: EdgeLoop
    ) -> None:
        self.stopped, self.executor, self.edge = stopped, executor, edge

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for gRPC to end the calls, then for the pool's threads to return (a method still in a
        store call when gRPC gave up on it would otherwise find the store closed under it); then the
        loop ends."""
        try:
            self.stopped.result(timeout)
        except concurrent.futures.TimeoutError:
            return False
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.edge.close()
        return True
