"""The calls as an operator's Prometheus and log store see them: one interceptor and one middleware.

``Observer`` is the outermost gRPC interceptor: it counts and times every gRPC call under the names the
ecosystem graphs (``grpc_server_*``), takes and returns ``x-correlator`` and writes one access line per
call. ``HttpObserver`` does the same for the HTTP port (``http_server_request_duration_seconds``); HTTP
calls reach the gRPC interceptors through the gate without ``Observer``, so a Connect or CAMARA call is
counted once, as HTTP. The series they update are in ``ledger.server.metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc
from grpc_status import rpc_status

from ledger.domain.errors import InvalidArgument
from ledger.server.auth import current_caller
from ledger.server.errors import to_status
from ledger.server.http.gate import peer_of
from ledger.server.metrics import API, GRPC_HANDLED, GRPC_SECONDS, GRPC_STARTED, HTTP_SECONDS
from ledger.server.wrapping import WrappingInterceptor, status_name, wrap_behaviour

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

access = logging.getLogger("ledger.access")
CORRELATOR_KEY = "x-correlator"
CORRELATOR = re.compile(r"[a-zA-Z0-9\-_:;./<>{}]{0,256}")
CORRELATOR_RULE = "must match ^[a-zA-Z0-9-_:;.\\/<>{}]{0,256}$"
GRPC_TYPES = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}


def log_call(message: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
    """One access line at INFO: as ``access.info(message, *args, extra=fields)`` does, without looking
    for the caller's source line (which costs more than the rest of the line)."""
    record = logging.LogRecord(access.name, logging.INFO, __file__, 0, message, args, None)
    record.__dict__.update(fields)
    access.handle(record)


class _Method:
    """One method's pre-bound series, so a call costs a dictionary lookup and three updates."""

    def __init__(self, method: str, handler: grpc.RpcMethodHandler) -> None:
        service, _, name = method.lstrip("/").partition("/")
        self.service, self.name = service, name
        kind = GRPC_TYPES[bool(handler.request_streaming), bool(handler.response_streaming)]
        self.labels = (kind, service, name)
        self.started = GRPC_STARTED.labels(*self.labels)
        self.seconds = GRPC_SECONDS.labels(*self.labels)
        self._handled: dict[str, Any] = {}
        self.request_id: bool | None = None  # whether the request message has a request_id (known on first call)

    def handled(self, code: str) -> Any:
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = GRPC_HANDLED.labels(*self.labels, code)
        return child


async def _refuse_correlator(context: grpc.aio.ServicerContext) -> None:
    status = to_status(InvalidArgument([(CORRELATOR_KEY, CORRELATOR_RULE)]))
    if status is not None:  # always: InvalidArgument maps to a status
        await context.abort_with_status(rpc_status.to_status(status))


class Observer(WrappingInterceptor):
    """Counts, times and logs every gRPC call, and takes and returns its ``x-correlator``.

    It runs outside authentication (so refused calls count too), and the handlers it is given for a
    method are the same object call after call (the interceptors inside wrap per method), so each is
    wrapped once; a refusal's handler, made per call, is wrapped per call."""

    def __init__(self, metrics: bool, access_log: bool) -> None:
        super().__init__()
        self.metrics, self.access_log = metrics, access_log
        self._methods: dict[str, _Method] = {}

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The method's handler, observed."""
        m = self._methods.get(method)
        if m is None:
            m = self._methods[method] = _Method(method, handler)
        return wrap_behaviour(handler, lambda one: self._unary(m, one), lambda many: self._stream(m, many))

    async def _correlate(self, context: grpc.aio.ServicerContext) -> str | None:
        """The call's ``x-correlator``, returned in the initial metadata; a bad one ends the call."""
        for key, value in context.invocation_metadata() or ():
            if key == CORRELATOR_KEY:
                if not isinstance(value, str) or not CORRELATOR.fullmatch(value):
                    await _refuse_correlator(context)
                await context.send_initial_metadata(((CORRELATOR_KEY, value),))
                return str(value)
        return None

    def _request_id(self, m: _Method, request: Any) -> str:
        """The request's ``request_id``, when its message has one. A refused call's request is its unread
        bytes, a malformed one a ``Malformed``: neither has one, nor decides whether the method's has."""
        if m.request_id is None:
            descriptor = getattr(request, "DESCRIPTOR", None)
            if descriptor is None:
                return ""
            m.request_id = "request_id" in descriptor.fields_by_name
        value = getattr(request, "request_id", None) if m.request_id else None
        return value if isinstance(value, str) else ""

    def _end(
        self,
        m: _Method,
        code: str,
        started: float,
        peer: str | None,
        correlator: str | None,
        request_id: str,
    ) -> None:
        elapsed = time.perf_counter() - started
        if self.metrics:
            m.handled(code).inc()
            m.seconds.observe(elapsed)
        if self.access_log and access.isEnabledFor(logging.INFO):
            caller = current_caller()
            log_call(
                "%s/%s %s %.1fms",
                (m.service, m.name, code, elapsed * 1000),
                {
                    "rpc": f"{m.service}/{m.name}",
                    "code": code,
                    "duration_ms": round(elapsed * 1000, 3),
                    "actor": caller.actor if caller is not None else None,
                    "request_id": request_id or None,
                    "x_correlator": correlator,
                    "peer": peer,
                },
            )

    def _unary(self, m: _Method, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            if self.metrics:
                m.started.inc()
            code, correlator = "UNKNOWN", None
            # Read now: once a cancelled call has ended its context must not be asked any more.
            peer = context.peer() if self.access_log else None
            request_id = self._request_id(m, request) if self.access_log and m.request_id is not False else ""
            try:
                correlator = await self._correlate(context)
                response = await behaviour(request, context)
                code = status_name(context)
                return response
            except grpc.aio.AbortError:
                code = status_name(context)
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            finally:
                self._end(m, code, started, peer, correlator, request_id)

        return wrapper

    def _stream(self, m: _Method, behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            if self.metrics:
                m.started.inc()
            code, correlator = "UNKNOWN", None
            # Read now: once a cancelled call has ended its context must not be asked any more.
            peer = context.peer() if self.access_log else None
            request_id = (
                self._request_id(m, request)
                if self.access_log and m.request_id is not False and not hasattr(request, "__aiter__")
                else ""
            )
            try:
                correlator = await self._correlate(context)
                async for response in behaviour(request, context):
                    yield response
                code = status_name(context)
            except grpc.aio.AbortError:
                code = status_name(context)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                code = "CANCELLED"
                raise
            finally:
                self._end(m, code, started, peer, correlator, request_id)

        return wrapper


class HttpObserver:
    """Times and logs every HTTP call (outermost, so refused correlators count too); marks its task as an
    HTTP call for the ledger's counters."""

    def __init__(self, app: ASGIApp, routes: Iterable[str], metrics: bool, access_log: bool) -> None:
        self.app, self.routes, self.metrics, self.access_log = app, frozenset(routes), metrics, access_log
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call, observed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        API.set("http")
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            path, method = str(scope.get("path", "")), str(scope.get("method", ""))
            route = path if path in self.routes else "other"
            if self.metrics:
                key = (route, method if method in _HTTP_METHODS else "other", status)
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = HTTP_SECONDS.labels(key[0], key[1], str(status))
                child.observe(elapsed)
            if self.access_log and access.isEnabledFor(logging.INFO):
                correlator = next((v for k, v in scope["headers"] if k == b"x-correlator"), None)
                text = correlator.decode("latin-1") if correlator is not None else None
                caller = current_caller()
                client = scope.get("client")
                log_call(
                    "%s %s %d %.1fms",
                    (method, route, status, elapsed * 1000),
                    {
                        "route": route,
                        "method": method,
                        "code": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "actor": caller.actor if caller is not None else None,
                        "x_correlator": text if text is not None and CORRELATOR.fullmatch(text) else None,
                        "peer": peer_of(client) if client else None,
                    },
                )


_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
