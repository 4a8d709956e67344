"""The HTTP port's way into the gRPC edge's call path.

An HTTP call runs through the same interceptors as a gRPC call (authentication and roles from the
``authorization`` header or the peer's address, the call budgets, errors as google.rpc statuses, the sync
bridge onto the pool), with ``HttpContext`` standing for the gRPC context. So a refusal, a budget or an
error mapping cannot differ by protocol: the HTTP routes only translate the outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import grpc
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


class Failure(NamedTuple):
    """How a call ended when it did not answer: the gRPC code, its message and the google.rpc.Status (with
    the ErrorInfo / BadRequest details) when one was given."""

    code: grpc.StatusCode
    message: str
    status: status_pb2.Status | None

    @property
    def reason(self) -> str:
        """The ErrorInfo reason (empty without one)."""
        for detail in self.status.details if self.status is not None else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return str(info.reason)
        return ""


class _Details(NamedTuple):
    """What an interceptor reads of a call before it runs (grpc.HandlerCallDetails)."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


def peer_of(client: tuple[str, int] | None) -> str:
    """An ASGI client address in gRPC's peer form (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``)."""
    if client is None:
        return "unknown:"
    host, port = client
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


class HttpContext:
    """What servicers and interceptors use of a grpc.aio.ServicerContext, for one HTTP call."""

    def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...], timeout: float | None = None) -> None:
        self._peer, self._metadata = peer, metadata
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._callbacks: list[Callable[[Any], None]] = []
        self._done = False
        self.failure: Failure | None = None

    def peer(self) -> str:
        """The caller's address, as gRPC writes it."""
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        """The request headers a servicer may read (authorization, x-ledger-actor)."""
        return self._metadata

    def time_remaining(self) -> float | None:
        """Seconds until the caller's timeout (None without one)."""
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def done(self) -> bool:
        """Whether the call has ended."""
        return self._done

    def cancelled(self) -> bool:
        """An HTTP call is not cancelled while its handler runs (a gone client is found when answered)."""
        return False

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(context)`` when the call ends."""
        self._callbacks.append(callback)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        """End the call with ``code`` (raises, as grpc.aio's abort does)."""
        status = None
        for key, value in trailing_metadata or ():
            if key == STATUS_DETAILS_KEY:
                status = status_pb2.Status.FromString(value)
        self.failure = Failure(code, details, status)
        raise grpc.aio.AbortError()

    async def abort_with_status(self, status: grpc.Status) -> None:
        """End the call with ``status`` (raises)."""
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_trailing_metadata(self, _metadata: Any) -> None:
        """Trailers have no place in these HTTP answers."""

    async def send_initial_metadata(self, _metadata: Any) -> None:
        """Initial metadata has no place in these HTTP answers."""

    def end(self) -> None:
        """The call has ended: run the callbacks."""
        self._done = True
        for callback in self._callbacks:
            callback(self)


class Gate:
    """Runs HTTP calls through the gRPC server's interceptors to the handlers registered for each method
    (the servicers' methods, and the HTTP routes' own handlers registered here under their service)."""

    def __init__(
        self, interceptors: Sequence[grpc.aio.ServerInterceptor], handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        self.interceptors = list(interceptors)
        self.handlers = dict(handlers)

    def add(self, method: str, behaviour: Callable[[Any, Any], Any]) -> None:
        """Register a plain unary handler ``behaviour(request, context)`` for ``method`` (``/service/name``):
        it runs on the pool, as a plain servicer method does, after the service's role is checked."""
        self.handlers[method] = grpc.unary_unary_rpc_method_handler(behaviour)

    async def call(self, method: str, request: Any, context: HttpContext) -> Any:
        """The handler's response to ``request``, or the ``Failure`` the call ended with."""
        try:
            handler = await self._resolve(0, _Details(method, context.invocation_metadata()))
            if handler is None or handler.unary_unary is None:
                return Failure(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not served here", None)
            return await handler.unary_unary(request, context)
        except grpc.aio.AbortError:
            if context.failure is None:  # every abort records its failure first
                raise
            return context.failure
        finally:
            context.end()

    async def _resolve(self, i: int, details: _Details) -> grpc.RpcMethodHandler | None:
        if i == len(self.interceptors):
            return self.handlers.get(details.method)
        return await self.interceptors[i].intercept_service(lambda d: self._resolve(i + 1, d), details)  # type: ignore[arg-type]
