"""Budgets: no caller, and no unauthenticated service, can take every place the server has.

A stream or a wait holds no thread on the aio edge, but each still holds memory, a place in the loop and,
while it works, the pool; and unary calls queue for the pool. ``LimitInterceptor`` counts the calls in
progress per kind (unary calls, the ledger's streams, health watches, reflection) in total and per caller,
and refuses one beyond its budget with RESOURCE_EXHAUSTED naming the limit. Streams that wait for their
next request (BatchCheck, reflection) are ended after ``stream_idle_seconds`` without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc

from ledger.server import metrics
from ledger.server.auth import current_caller
from ledger.server.errors import MethodInterceptor, ResourceExhausted, refuse, wrap_handler

if TYPE_CHECKING:
    from ledger.config import Limits

log = logging.getLogger(__name__)
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
REFLECTION = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")
# Streams whose next request may be awaited only so long (the others send; a feed or a watch may be quiet).
IDLE_BOUNDED = ("/ledger.v1.RecyclingService/BatchCheck", *REFLECTION)
# Streams that go on at their client's pace for as long as it likes (a watch, a batch check stream, a feed):
# their work is never done, and a send waits for as long as the client does not read, so a stop ends them
# at once (UNAVAILABLE, or CANCELLED when it meets a send) instead of giving them the grace period.
ENDED_AT_STOP = (HEALTH_WATCH, "/ledger.v1.RecyclingService/BatchCheck", "/ledger.v1.HistoryService/StreamEvents")
STOPPING = "the server is stopping; retry (on another server, or once it is back)"
# How often a stop cancels again the calls it ends at once that are still running.
RECANCEL_SECONDS = 0.5


class Budget:
    """Counts the calls of one kind in progress, in total and per caller; thread-safe."""

    def __init__(
        self,
        name: str,
        setting: str,
        total: int,
        per_caller: int | None = None,
        per_caller_setting: str = "LEDGER_MAX_STREAMS_PER_CALLER",
    ) -> None:
        self.name, self.setting, self.total, self.per_caller = name, setting, total, per_caller
        self.per_caller_setting = per_caller_setting
        self._lock = threading.Lock()
        self._held = 0
        self._by_caller: Counter[str] = Counter()

    def take(self, caller: str) -> Callable[[], None]:
        """Take one place for ``caller``, or raise ResourceExhausted; returns the (idempotent) release."""
        with self._lock:
            if self._held >= self.total:
                metrics.refused(self.setting)
                raise ResourceExhausted(
                    f"at most {self.total} {self.name} at once on this server ({self.setting}); retry later"
                )
            if self.per_caller is not None and self._by_caller[caller] >= self.per_caller:
                metrics.refused(self.per_caller_setting)
                raise ResourceExhausted(
                    f"at most {self.per_caller} {self.name} at once per caller ({self.per_caller_setting}); "
                    "close one or retry later"
                )
            self._held += 1
            self._by_caller[caller] += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self._held -= 1
                self._by_caller[caller] -= 1
                if not self._by_caller[caller]:
                    del self._by_caller[caller]

        return release

    @property
    def held(self) -> int:
        """Places taken now."""
        return self._held


class Turns:
    """At most ``per_caller`` pieces of one caller's work at once (on the loop: no lock); the rest wait
    their turn, so one caller's streams share the pool's time as one caller's calls would."""

    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, caller: str) -> AsyncIterator[None]:
        """Hold one of ``caller``'s turns."""
        slot = self._slots.get(caller)
        if slot is None:
            slot = self._slots[caller] = (asyncio.Semaphore(self.per_caller), [0])
        semaphore, users = slot
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._slots[caller]


def caller_key(context: Any) -> str:
    """Whom a budget counts: the token's actor when authenticated, else the peer's address (no port)."""
    caller = current_caller()
    if caller is not None and caller.authenticated:
        return f"actor:{caller.actor}"
    peer = context.peer() or ""
    return peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer


class LimitInterceptor(MethodInterceptor):
    """Takes a place in the call's budget before it runs, and gives it back when it ends."""

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.limits = limits
        self.calls = Budget(
            "unary calls",
            "LEDGER_MAX_CALLS",
            limits.max_calls,
            limits.max_calls_per_caller,
            "LEDGER_MAX_CALLS_PER_CALLER",
        )
        self.streams = Budget("streams", "LEDGER_MAX_STREAMS", limits.max_streams, limits.max_streams_per_caller)
        self.watches = Budget(
            "health watches", "LEDGER_MAX_HEALTH_WATCHES", limits.max_health_watches, limits.max_streams_per_caller
        )
        self.reflection = Budget(
            "reflection streams",
            "LEDGER_MAX_REFLECTION_STREAMS",
            limits.max_reflection_streams,
            limits.max_streams_per_caller,
        )
        # The tasks of calls now waiting on their client, and of streams that go on at their client's pace
        # (``ENDED_AT_STOP``): ended at once when the server stops.
        self._waiting_on_client: set[asyncio.Task[Any]] = set()
        self._client_paced: set[asyncio.Task[Any]] = set()
        # The tasks of the other calls (unary calls, streams that end by themselves): a stop waits for them.
        self._at_work: set[asyncio.Task[Any]] = set()
        self.stopping = False

    def budget_for(self, method: str, streaming: bool = True) -> Budget:
        """The budget a method counts against."""
        if not streaming:
            return self.calls
        if method == HEALTH_WATCH:
            return self.watches
        if method.startswith(REFLECTION):
            return self.reflection
        return self.streams

    def stop(self) -> None:
        """The server is stopping (called on the loop): streams waiting on their client (for a request) and
        streams that go on at their client's pace (watches, batch checks, feeds: whether at work, queued for
        the pool or blocked in a send the client does not read) end at once; calls at work get the grace
        period. Work already running on the pool finishes there, its answer dropped."""
        self.stopping = True
        self._cancel_waiting()

    async def drained(self) -> None:
        """Return once every call a stop waits for (all but those it ends at once) has returned; calls
        that started before the stop and are still running, that is (a stopping server takes no new one)."""
        while self._at_work:
            await asyncio.wait(list(self._at_work))

    def _cancel_waiting(self) -> None:
        # Again every RECANCEL_SECONDS while any is left: a cancellation that lands inside gRPC's own send
        # may be taken there for the client's and the handler resumed (an exit after the whole grace was
        # seen under load once); the next one, or the stopping check before each response, ends it.
        left = [task for task in [*self._waiting_on_client, *self._client_paced] if not task.done()]
        for task in left:
            task.cancel()
        if left:
            asyncio.get_running_loop().call_later(RECANCEL_SECONDS, self._cancel_waiting)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler counted against the method's budget (and, for streams waiting on their client, the
        idle bound)."""
        streaming = handler.request_streaming or handler.response_streaming
        budget = self.budget_for(method, streaming)
        idle = self.limits.stream_idle_seconds if method.startswith(IDLE_BOUNDED) else None
        ends_at_stop = method in ENDED_AT_STOP
        return wrap_handler(
            handler, lambda b: self._unary(budget, b, idle), lambda b: self._stream(budget, b, idle, ends_at_stop)
        )

    def _unary(self, budget: Budget, behaviour: Callable[..., Any], idle: float | None) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            release = await _take(budget, context)
            task = asyncio.current_task()
            if task is not None:
                self._at_work.add(task)
            try:
                return await behaviour(self._bounded(request, context, idle) if idle else request, context)
            finally:
                self._at_work.discard(task)  # type: ignore[arg-type]
                release()

        return wrapper

    def _stream(
        self, budget: Budget, behaviour: Callable[..., Any], idle: float | None, ends_at_stop: bool
    ) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            release = await _take(budget, context)
            context.add_done_callback(lambda _context: release())  # also when the generator is left unclosed
            task = asyncio.current_task()
            if ends_at_stop and task is not None:
                if self.stopping:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING)
                self._client_paced.add(task)
            elif task is not None:
                self._at_work.add(task)
            try:
                async for response in behaviour(self._bounded(request, context, idle) if idle else request, context):
                    if ends_at_stop and self.stopping:
                        await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING)
                    yield response
            except asyncio.CancelledError:
                if not self.stopping:
                    raise
                try:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING)
                except grpc.aio.UsageError:
                    return  # the call ended with its own status just before the stop cancelled it
            finally:
                self._client_paced.discard(task)  # type: ignore[arg-type]
                self._at_work.discard(task)  # type: ignore[arg-type]
                release()

        return wrapper

    async def _bounded(self, requests: Any, context: grpc.aio.ServicerContext, seconds: float) -> AsyncIterator[Any]:
        """``requests``, ending the call when the next one takes longer than ``seconds`` to arrive, or when
        the server stops while it waits for one."""
        iterator = requests.__aiter__()
        task = asyncio.current_task()
        if task is None:  # a coroutine of a call always runs in its task; without one, nothing can wake it
            raise RuntimeError("a call's requests are read inside the call's task")
        while True:
            if self.stopping:
                await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING)
            self._waiting_on_client.add(task)
            try:
                async with asyncio.timeout(seconds):  # no task of its own per request, unlike wait_for
                    request = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                await context.abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"no request for {seconds:g}s (LEDGER_STREAM_IDLE_SECONDS); the stream is closed",
                )
            except asyncio.CancelledError:
                if not self.stopping:
                    raise
                await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING)
            finally:
                self._waiting_on_client.discard(task)
            yield request


async def _take(budget: Budget, context: grpc.aio.ServicerContext) -> Callable[[], None]:
    try:
        return budget.take(caller_key(context))
    except ResourceExhausted as exc:
        await refuse(context, exc)
        raise  # not reached: abort raises
