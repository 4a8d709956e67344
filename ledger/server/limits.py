"""Budgets for long calls: no caller, and no unauthenticated service, can hold every serving thread.

The server serves each call on one of ``max_workers`` threads, and a stream holds its thread for as long
as it is open. ``LimitInterceptor`` counts the streams in progress per kind (the ledger's streams, health
watches, reflection) and per caller, and refuses one beyond its budget with RESOURCE_EXHAUSTED naming the
limit, so that a quarter of the threads at least always serves unary calls. ``IdleWatch`` ends a stream
that waits for a request longer than ``stream_idle_seconds`` (an idle BatchCheck or reflection stream).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from grpc_status import rpc_status

from ledger.domain import errors
from ledger.server.auth import current_caller
from ledger.server.errors import to_status, wrap_handler

if TYPE_CHECKING:
    from ledger.config import Limits

log = logging.getLogger(__name__)
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
REFLECTION = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")
# Streams whose next request may be awaited only so long (the others send; a feed or a watch may be quiet).
IDLE_BOUNDED = ("/ledger.v1.RecyclingService/BatchCheck", *REFLECTION)


class Budget:
    """Counts the calls of one kind in progress, in total and per caller; thread-safe."""

    def __init__(self, name: str, setting: str, total: int, per_caller: int | None = None) -> None:
        self.name, self.setting, self.total, self.per_caller = name, setting, total, per_caller
        self._lock = threading.Lock()
        self._held = 0
        self._by_caller: Counter[str] = Counter()

    def take(self, caller: str) -> Callable[[], None]:
        """Take one place for ``caller``, or raise ResourceExhausted; returns the (idempotent) release."""
        with self._lock:
            if self._held >= self.total:
                raise errors.ResourceExhausted(
                    f"at most {self.total} {self.name} at once on this server ({self.setting}); retry later"
                )
            if self.per_caller is not None and self._by_caller[caller] >= self.per_caller:
                raise errors.ResourceExhausted(
                    f"at most {self.per_caller} {self.name} at once per caller (LEDGER_MAX_STREAMS_PER_CALLER); "
                    "close one or retry later"
                )
            self._held += 1
            self._by_caller[caller] += 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                self._held -= 1
                self._by_caller[caller] -= 1
                if not self._by_caller[caller]:
                    del self._by_caller[caller]

        return release

    @property
    def held(self) -> int:
        """Places taken now."""
        return self._held


def caller_key(context: grpc.ServicerContext) -> str:
    """Whom a budget counts: the token's actor when authenticated, else the peer's address (no port)."""
    caller = current_caller()
    if caller is not None and caller.authenticated:
        return f"actor:{caller.actor}"
    peer = context.peer() or ""
    return peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer


class IdleWatch:
    """Ends streams that have waited for their next request longer than ``seconds``: one thread for all."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Condition()
        self._due: list[tuple[float, int, grpc.ServicerContext]] = []
        self._waiting: dict[int, float] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def requests(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        """``requests``, ending the call when the next one takes longer than ``seconds`` to arrive."""
        key = next(self._ids)
        try:
            while True:
                self._arm(key, context)
                try:
                    request = next(requests)
                except StopIteration:
                    return
                finally:
                    with self._lock:
                        self._waiting.pop(key, None)
                yield request
        finally:
            with self._lock:
                self._waiting.pop(key, None)

    def _arm(self, key: int, context: grpc.ServicerContext) -> None:
        due = time.monotonic() + self.seconds
        with self._lock:
            self._waiting[key] = due
            heapq.heappush(self._due, (due, key, context))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="idle-watch", daemon=True)
                self._thread.start()
            self._lock.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._due:
                    self._lock.wait()
                due, key, context = self._due[0]
                now = time.monotonic()
                if due > now:
                    self._lock.wait(due - now)
                    continue
                heapq.heappop(self._due)
                expired = self._waiting.get(key) == due
                if expired:
                    del self._waiting[key]
            if expired:
                _end(context, f"no request for {self.seconds:g}s (LEDGER_STREAM_IDLE_SECONDS); the stream is closed")


def _end(context: grpc.ServicerContext, message: str) -> None:
    """End a call from outside its thread, with DEADLINE_EXCEEDED and a message when the runtime allows."""
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        # The sync server's call object can end the call with a status the client reads; its public
        # context can only cancel it (the client then reads CANCELLED).
        call.cancel(grpc.StatusCode.DEADLINE_EXCEEDED.value[0], message)  # type: ignore[union-attr]
    except Exception:
        context.cancel()  # type: ignore[attr-defined]


def _refuse(context: grpc.ServicerContext, exc: errors.LedgerError) -> None:
    status = to_status(exc)
    assert status is not None
    context.abort_with_status(rpc_status.to_status(status))


class LimitInterceptor(grpc.ServerInterceptor):
    """Takes a place in the call's budget before a streaming call runs, and gives it back when it ends."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.streams = Budget("streams", "LEDGER_MAX_STREAMS", limits.max_streams, limits.max_streams_per_caller)
        self.watches = Budget("health watches", "LEDGER_MAX_HEALTH_WATCHES", limits.max_health_watches)
        self.reflection = Budget("reflection streams", "LEDGER_MAX_REFLECTION_STREAMS", limits.max_reflection_streams)
        self.idle = IdleWatch(limits.stream_idle_seconds)
        self._handlers: dict[str, grpc.RpcMethodHandler | None] = {}

    def budget_for(self, method: str) -> Budget:
        """The budget a streaming method counts against."""
        if method == HEALTH_WATCH:
            return self.watches
        if method.startswith(REFLECTION):
            return self.reflection
        return self.streams

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Wrap each streaming method once; unary methods pass as they are."""
        method = handler_call_details.method
        if method in self._handlers:
            return self._handlers[method]
        handler = continuation(handler_call_details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return handler
        budget = self.budget_for(method)
        idle = self.idle if method.startswith(IDLE_BOUNDED) else None
        wrapped = wrap_handler(handler, lambda b: self._unary(budget, b, idle), lambda b: self._stream(budget, b, idle))
        self._handlers[method] = wrapped
        return wrapped

    def _unary(self, budget: Budget, behaviour: Callable[..., Any], idle: IdleWatch | None) -> Callable[..., Any]:
        def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
            release = self._take(budget, context)
            try:
                return behaviour(idle.requests(request, context) if idle else request, context)
            finally:
                release()

        return wrapper

    def _stream(self, budget: Budget, behaviour: Callable[..., Any], idle: IdleWatch | None) -> Callable[..., Any]:
        def wrapper(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            release = self._take(budget, context)
            try:
                yield from behaviour(idle.requests(request, context) if idle else request, context)
            finally:
                release()

        return wrapper

    def _take(self, budget: Budget, context: grpc.ServicerContext) -> Callable[[], None]:
        try:
            release = budget.take(caller_key(context))
        except errors.ResourceExhausted as exc:
            _refuse(context, exc)
            raise  # not reached: abort raises
        context.add_callback(release)  # also when the call ends before the servicer's code does
        return release
