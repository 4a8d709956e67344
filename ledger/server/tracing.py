"""OpenTelemetry spans, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; otherwise nothing at all.

``start`` (called by ``ledger serve``, in each worker process) sets up a tracer provider that batches spans
to the OTLP gRPC exporter, configured by the standard ``OTEL_*`` variables; ``tracer`` is then set, and the
wiring adds ``TracingInterceptor`` (a server span per gRPC call) and ``HttpTracing`` (a server span per HTTP
request), and each lifecycle command runs in a child span (``command``). Unset, no provider is made, the
SDK is not imported, no interceptor is added and a command pays one test of ``tracer``.

A span carries names of methods and routes, status codes, request ids, positions, refusal reasons and the
caller's ``x-correlator``, never a request's fields: no number, name, ID number, free text or purpose.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ledger.server.observer import CORRELATOR, CORRELATOR_KEY
from ledger.server.wrapping import WrappingInterceptor, status_name, wrap_behaviour

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ledger.application import CommandResult

log = logging.getLogger("ledger")
T = TypeVar("T")
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
SERVICE_NAME = "ledger"
# Set by ``start`` when tracing is on: the one test the command path makes.
tracer: Tracer | None = None
# The gRPC codes that are the server's failure (OpenTelemetry's rule for server spans); the others are the
# caller's (a refusal, a bad argument) and leave the span's status unset.
SERVER_FAILURES = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})
_CODES = {c.name: c.value[0] for c in grpc.StatusCode}
_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


def start(env: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Set up tracing when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-only variable) is set: a tracer
    provider (``OTEL_SERVICE_NAME``, default ``ledger``; the sampler of ``OTEL_TRACES_SAMPLER``) with a
    batch processor (``OTEL_BSP_*``) and the OTLP gRPC exporter (``OTEL_EXPORTER_OTLP_*``). Returns it (its
    ``shutdown`` flushes the spans), or None with tracing off."""
    global tracer
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(ENDPOINT)
    if not endpoint:
        tracer = None
        return None
    # Imported only here: with tracing off the SDK and the exporter are never loaded.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # process.pid tells the processes of ``serve --workers N`` apart.
    resource = Resource.create(
        {"service.name": env.get("OTEL_SERVICE_NAME") or SERVICE_NAME, "process.pid": os.getpid()}
    )
    # Flushed by ``stop`` when the server has stopped (not by the SDK's exit hook, at an unknown moment).
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("ledger.server")
    log.info("tracing: spans exported to %s", endpoint)
    return provider


def stop(provider: TracerProvider | None) -> None:
    """Export the spans still batched and stop the exporter (at shutdown)."""
    global tracer
    if provider is None:
        return
    tracer = None
    try:
        provider.shutdown()
    except Exception:  # a failing exporter loses its spans, never the rest of the shutdown
        log.warning("tracing: the last spans could not be exported", exc_info=True)


def _end(span: Span, code: str) -> None:
    span.set_attribute("rpc.grpc.status_code", _CODES.get(code, 2))
    if code in SERVER_FAILURES:
        span.set_status(Status(StatusCode.ERROR, code))


class TracingInterceptor(WrappingInterceptor):
    """The outermost gRPC interceptor with tracing on: one server span per call (``rpc.system``,
    ``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code``, ``x_correlator``), continuing the caller's
    trace from its ``traceparent`` metadata; refused calls have theirs too. The handler a method resolves
    to is the same object call after call, so each is wrapped once."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The method's handler, traced."""
        service, _, name = method.lstrip("/").partition("/")
        names = (f"{service}/{name}", {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name})
        return wrap_behaviour(handler, lambda one: self._unary(names, one), lambda many: self._stream(names, many))

    def _start(self, names: tuple[str, dict[str, str]], context: grpc.aio.ServicerContext) -> Span:
        """The call's span, begun (not yet current), a child of the caller's when its metadata has one."""
        carrier: dict[str, str] = {}
        for key, value in context.invocation_metadata() or ():
            if isinstance(value, str):
                carrier[key] = value
        attributes = dict(names[1])
        correlator = carrier.get(CORRELATOR_KEY)
        if correlator is not None and CORRELATOR.fullmatch(correlator):
            attributes["x_correlator"] = correlator
        parent = propagate.extract(carrier) if carrier else None
        return self.tracer.start_span(names[0], context=parent, kind=SpanKind.SERVER, attributes=attributes)

    def _unary(self, names: tuple[str, dict[str, str]], behaviour: Callable[..., Awaitable[Any]]) -> Any:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            span = self._start(names, context)
            code = "UNKNOWN"
            # A coroutine ends in the task it began in: the span is current for all of it.
            with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
                try:
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
                    _end(span, code)

        return wrapper

    def _stream(self, names: tuple[str, dict[str, str]], behaviour: Callable[..., AsyncIterator[Any]]) -> Any:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            span = self._start(names, context)
            current = trace.set_span_in_context(span)
            responses = behaviour(request, context).__aiter__()
            code = "UNKNOWN"
            try:
                while True:
                    # Current only while the handler runs, never across a ``yield``: a cancelled stream is
                    # closed from another context, where the span's token could not be reset.
                    token = otel_context.attach(current)
                    try:
                        response = await responses.__anext__()
                    except StopAsyncIteration:
                        break
                    finally:
                        otel_context.detach(token)
                    yield response
                code = status_name(context)
            except grpc.aio.AbortError:
                code = status_name(context)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                code = "CANCELLED"
                raise
            finally:
                _end(span, code)
                span.end()

        return wrapper


class HttpTracing:
    """The outermost ASGI middleware with tracing on: one server span per HTTP request, named by its method
    and route template (``other`` for a path not served: a path is never recorded), with
    ``http.request.method``, ``http.route``, ``http.response.status_code`` and ``x_correlator``; an
    incoming ``traceparent`` header continues the caller's trace."""

    def __init__(self, app: ASGIApp, routes: frozenset[str], tracer: Tracer) -> None:
        self.app, self.routes, self.tracer = app, routes, tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call in its span."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path, method = str(scope.get("path", "")), str(scope.get("method", ""))
        route = path if path in self.routes else "other"
        method = method if method in _HTTP_METHODS else "_OTHER"
        attributes = {"http.request.method": method, "http.route": route}
        correlator = carrier.get(CORRELATOR_KEY)
        if correlator is not None and CORRELATOR.fullmatch(correlator):
            attributes["x_correlator"] = correlator
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with self.tracer.start_as_current_span(
            f"{method} {route}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, str(status)))


def command(
    active: Tracer, rpc: str, request_id: str, execute: Callable[..., CommandResult], /, *args: Any, **kwargs: Any
) -> CommandResult:
    """``execute(*args, **kwargs)`` in a child span named ``rpc``, with its ``request_id`` and then its
    ``position`` and ``outcome`` (``recorded``, ``replayed`` or ``refused`` with the error's ``reason``).
    Runs on the pool thread, whose context (copied from the call's task) holds the call's span."""
    with active.start_as_current_span(
        rpc,
        attributes={"ledger.request_id": request_id},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            result = execute(*args, **kwargs)
        except Exception as e:
            span.set_attribute("ledger.outcome", "refused")
            span.set_attribute("ledger.reason", str(getattr(e, "reason", type(e).__name__)))
            raise
        span.set_attribute("ledger.outcome", "replayed" if result.replayed else "recorded")
        if result.position:
            span.set_attribute("ledger.position", result.position)
        return result
