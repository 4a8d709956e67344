"""The edge's one seam between grpc.aio and plain (sync) servicer methods.

Every handler leaves ``SyncBridge`` as a coroutine (one response) or an async generator (responses), so
the interceptors outside it wrap only those two shapes. A plain method runs on the bounded ``Blocking``
pool with a ``SyncContext`` (the sync server's context API); what waits (a stream's next request, a
check's ``min_position``) waits on the loop, holding no thread. A method added later to a servicer needs
no edit here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import grpc

from ledger.server.errors import MethodInterceptor

T = TypeVar("T")
_END = object()


class Blocking:
    """The bounded thread pool that runs blocking work (commands, store reads, checks) for the loop."""

    def __init__(self, executor: futures.ThreadPoolExecutor) -> None:
        self.executor = executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the pool, with the caller's context variables (the authenticated caller)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, contextvars.copy_context().run, fn, *args)


class Deferred(Exception):
    """Raised by a plain method that must wait first: the bridge awaits ``wait()`` on the loop (no thread
    held), then runs the method again, which then finds what it waited for."""

    def __init__(self, wait: Callable[[], Awaitable[None]]) -> None:
        super().__init__("deferred")
        self.wait = wait


def defer(context: Any, wait: Callable[[], Awaitable[None]]) -> None:
    """Wait on the loop, holding no thread: raises ``Deferred``, and the bridge runs the unary method again
    once ``wait()`` returns; in that second run (and in a stream, which has begun answering by then) this
    returns at once. A method defers before any side effect."""
    if getattr(context, "may_defer", False):
        raise Deferred(wait)


class Abort(Exception):
    """A plain method's ``context.abort``: carried to the loop, which ends the call with it."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[Any, ...]) -> None:
        super().__init__(code, details)
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata


class SyncContext:
    """The sync server's ``ServicerContext`` API for a plain method running on the pool."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self.may_defer = True
        self.cancelled = False

    def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: tuple[Any, ...] = ()) -> None:
        """End the call with ``code`` (raises, as the sync server's abort does)."""
        raise Abort(code, details, tuple(trailing_metadata))

    def abort_with_status(self, status: grpc.Status) -> None:
        """End the call with ``status`` (raises)."""
        self.abort(status.code, status.details, tuple(status.trailing_metadata or ()))

    def is_active(self) -> bool:
        """Whether the call is still going (the client has not cancelled it, its deadline has not passed)."""
        return not self.cancelled and not self._context.done()

    def time_remaining(self) -> float | None:
        """Seconds until the deadline (None without one)."""
        return self._context.time_remaining()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` when the call ends."""
        self._context.add_done_callback(lambda _context: callback())
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


async def _finish(context: grpc.aio.ServicerContext, abort: Abort) -> None:
    await context.abort(abort.code, abort.details, abort.trailing_metadata)


def _unary(blocking: Blocking, behaviour: Callable[..., Any], streaming_requests: bool) -> Callable[..., Any]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        sync = SyncContext(context)
        if streaming_requests:
            request = SyncRequests(request, asyncio.get_running_loop())
        try:
            while True:
                try:
                    return await blocking.run(behaviour, request, sync)
                except Deferred as deferred:
                    await deferred.wait()
                    sync.may_defer = False
        except Abort as abort:
            await _finish(context, abort)
        except asyncio.CancelledError:
            sync.cancelled = True
            raise

    return call


def _stream(blocking: Blocking, behaviour: Callable[..., Any], streaming_requests: bool) -> Callable[..., Any]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        sync = SyncContext(context)
        sync.may_defer = False  # a stream has begun answering by the time it could wait
        if streaming_requests:
            request = SyncRequests(request, asyncio.get_running_loop())
        responses: Iterator[Any] | None = None
        try:
            responses = iter(await blocking.run(behaviour, request, sync))
            while True:
                item = await blocking.run(next, responses, _END)
                if item is _END:
                    return
                yield item
        except Abort as abort:
            await _finish(context, abort)
        except (asyncio.CancelledError, GeneratorExit):
            sync.cancelled = True
            raise
        finally:
            if responses is not None and hasattr(responses, "close"):
                blocking.executor.submit(_close, responses)

    return call


def _close(responses: Any) -> None:
    with contextlib.suppress(ValueError):  # still running on another thread (a cancelled call): it ends itself
        responses.close()


class SyncRequests:
    """A stream's requests as a plain iterator for a method on the pool (it waits for each on the loop)."""

    def __init__(self, requests: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._requests = requests.__aiter__()
        self._loop = loop

    def __iter__(self) -> SyncRequests:
        return self

    def __next__(self) -> Any:
        item = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
        if item is _END:
            raise StopIteration
        return item

    async def _next(self) -> Any:
        try:
            return await self._requests.__anext__()
        except StopAsyncIteration:
            return _END


def _as_generator(behaviour: Callable[..., Awaitable[None]]) -> Callable[..., AsyncIterator[Any]]:
    """A reader/writer stream handler (a coroutine writing with ``context.write``) as an async generator."""

    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await behaviour(request, context)
        return
        yield

    return call


def bridged(handler: grpc.RpcMethodHandler, blocking: Blocking) -> grpc.RpcMethodHandler:
    """``handler`` with a coroutine (unary responses) or an async generator (streamed responses)."""
    streaming = handler.request_streaming
    for name in ("unary_unary", "stream_unary", "unary_stream", "stream_stream"):
        behaviour = getattr(handler, name)
        if behaviour is None:
            continue
        if name.endswith("unary"):
            if not inspect.iscoroutinefunction(behaviour):
                behaviour = _unary(blocking, behaviour, streaming)
        elif inspect.iscoroutinefunction(behaviour):
            behaviour = _as_generator(behaviour)
        elif not inspect.isasyncgenfunction(behaviour):
            behaviour = _stream(blocking, behaviour, streaming)
        return handler._replace(**{name: behaviour})
    return handler


class SyncBridge(MethodInterceptor):
    """The innermost interceptor: every handler leaves it in one of the two async shapes."""

    def __init__(self, blocking: Blocking) -> None:
        super().__init__()
        self.blocking = blocking

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The method's handler, bridged."""
        return bridged(handler, self.blocking)
