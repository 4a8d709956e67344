"""What an operator's Prometheus and log store see of a serving ledger (``serve --metrics``, the access log).

``Observer`` is the outermost gRPC interceptor: it counts and times every gRPC call under the names the
ecosystem graphs (``grpc_server_*``), takes and returns ``x-correlator`` and writes one access line per
call. ``HttpObserver`` does the same for the HTTP port (``http_server_request_duration_seconds``); HTTP
calls reach the gRPC interceptors through the gate without ``Observer``, so a Connect or CAMARA call is
counted once, as HTTP. The ledger's own counters are bumped where their events happen (a commit, an
answer, a refusal); gauges (head, views, signed head, feeds) are read at scrape time by
``LedgerCollector`` from what the server already knows, so the hot paths pay nothing for them.

Label values are bounded: methods, routes, codes, views, roles and limit names; never a number, an actor
or a purpose.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from grpc_status import rpc_status
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ledger.domain.errors import InvalidArgument
from ledger.server.auth import current_caller
from ledger.server.errors import to_status
from ledger.server.http.gate import peer_of

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ledger.server.bridge import Blocking
    from ledger.server.heads import HeadPublisher
    from ledger.server.status import StatusReport

disable_created_metrics()  # the ``_created`` series double the output and no dashboard reads them

log = logging.getLogger(__name__)
access = logging.getLogger("ledger.access")
CORRELATOR_KEY = "x-correlator"
CORRELATOR = re.compile(r"[a-zA-Z0-9\-_:;./<>{}]{0,256}")
CORRELATOR_RULE = "must match ^[a-zA-Z0-9-_:;.\\/<>{}]{0,256}$"
# Which API a check or a disclosure came in by: the HTTP observer sets "http" for its call's task (and,
# through ``Blocking.run``, the pool's work for it).
API: ContextVar[str] = ContextVar("ledger_api", default="grpc")

# Every series this process counts; each server's /metrics adds its scrape-time gauges (``scrape_registry``).
REGISTRY = CollectorRegistry()
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
GRPC_STARTED = Counter("grpc_server_started", "gRPC calls started", GRPC_LABELS, registry=REGISTRY)
GRPC_HANDLED = Counter(
    "grpc_server_handled", "gRPC calls finished, by status code", (*GRPC_LABELS, "grpc_code"), registry=REGISTRY
)
GRPC_SECONDS = Histogram(
    "grpc_server_handling_seconds", "gRPC call duration (seconds)", GRPC_LABELS, buckets=_SECONDS, registry=REGISTRY
)
HTTP_SECONDS = Histogram(
    "http_server_request_duration_seconds",
    "HTTP request duration (seconds)",
    ("http_route", "http_request_method", "http_response_status_code"),
    buckets=_SECONDS,
    registry=REGISTRY,
)
EVENTS_APPENDED = Counter("ledger_events_appended", "events this server appended to the ledger", registry=REGISTRY)
COMMIT_BATCH = Histogram(
    "ledger_commit_batch_commands",
    "commands saved together in one transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=REGISTRY,
)
CHECKS = Counter("ledger_checks", "numbers checked, by API and answer", ("api", "status"), registry=REGISTRY)
DISCLOSURES = Counter(
    "ledger_personal_data_disclosures",
    "subscribers' personal data disclosed, by the caller's role",
    ("role",),
    registry=REGISTRY,
)
REFUSALS = Counter(
    "ledger_limit_refusals", "calls refused by a budget, by the limit's variable", ("limit",), registry=REGISTRY
)
_CHECKS = {
    (api, status): CHECKS.labels(api, status)
    for api in ("grpc", "http")
    for status in ("NOT_CHANGED", "CHANGED", "NO_DATA")
}
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


def appended(commands: int, events: int) -> None:
    """``commands`` commands saved together, ``events`` events in all (from the committing thread)."""
    EVENTS_APPENDED.inc(events)
    COMMIT_BATCH.observe(commands)


def checked(statuses: list[str]) -> None:
    """Count the recycling answers composed (one per number), under the API the call came in by."""
    api = API.get()
    if len(statuses) == 1:
        _CHECKS[api, statuses[0]].inc()
        return
    for status, n in Tally(statuses).items():
        _CHECKS[api, status].inc(n)


def disclosed(subscribers: int) -> None:
    """Count ``subscribers`` whose personal data goes out now, under the caller's role."""
    caller = current_caller()
    roles = caller.roles if caller is not None else frozenset()
    role = next((r for r in ("compliance", "admin") if r in roles), min(roles, default="none"))
    DISCLOSURES.labels(role).inc(subscribers)


def refused(limit: str) -> None:
    """Count a call refused by the budget set by ``limit`` (an environment variable's name)."""
    REFUSALS.labels(limit).inc()


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


def _code(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    try:
        return grpc.StatusCode(code).name if not isinstance(code, int) else _BY_NUMBER.get(code, "UNKNOWN")
    except ValueError:
        return "UNKNOWN"


_BY_NUMBER = {c.value[0]: c.name for c in grpc.StatusCode}


async def _refuse_correlator(context: grpc.aio.ServicerContext) -> None:
    status = to_status(InvalidArgument([(CORRELATOR_KEY, CORRELATOR_RULE)]))
    if status is not None:  # always: InvalidArgument maps to a status
        await context.abort_with_status(rpc_status.to_status(status))


class Observer(grpc.aio.ServerInterceptor):
    """Counts, times and logs every gRPC call, and takes and returns its ``x-correlator``.

    It runs outside authentication (so refused calls count too), and the handlers it is given for a
    method are the same object call after call (the interceptors inside wrap per method), so each is
    wrapped once; a refusal's handler, made per call, is wrapped per call."""

    def __init__(self, metrics: bool, access_log: bool) -> None:
        self.metrics, self.access_log = metrics, access_log
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        self._methods: dict[str, _Method] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """The method's handler, observed."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        m = self._methods.get(method)
        if m is None:
            m = self._methods[method] = _Method(method, handler)
        wrapped = self._wrap(m, handler)
        if known is None:
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, m: _Method, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary:
            return handler._replace(unary_unary=self._unary(m, handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=self._unary(m, handler.stream_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=self._stream(m, handler.unary_stream))
        if handler.stream_stream:
            return handler._replace(stream_stream=self._stream(m, handler.stream_stream))
        return handler

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
                code = _code(context)
                return response
            except grpc.aio.AbortError:
                code = _code(context)
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
                code = _code(context)
            except grpc.aio.AbortError:
                code = _code(context)
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


class Places(Protocol):
    """A budget as the collector reads it (``limits.Budget``)."""

    @property
    def held(self) -> int:
        """Places taken now."""
        ...


class LedgerCollector(Collector):
    """The ledger's gauges, read at scrape time: the head, each view's position, lag, state and rebuild,
    the latest signed head, the feeds open."""

    def __init__(self, status: StatusReport, publisher: HeadPublisher | None, feeds: Places | None) -> None:
        self.status, self.publisher, self.feeds = status, publisher, feeds

    def collect(self) -> Iterator[Metric]:
        """The gauges now (runs on the pool: it reads the store and the views)."""
        from ledger.server.status import view_statuses
        from ledger.v1 import history_service_pb2 as pb

        head = self.status.app.reader.max_position()
        yield GaugeMetricFamily("ledger_head_position", "the ledger's head (its latest position)", value=head)
        views = view_statuses(self.status.read_models.generations(), head)
        position = GaugeMetricFamily(
            "ledger_read_model_position", "the position a read model has applied", labels=["view"]
        )
        lag = GaugeMetricFamily(
            "ledger_read_model_lag_events", "events a read model is behind the head", labels=["view"]
        )
        state = GaugeMetricFamily(
            "ledger_read_model_state",
            "1 for the state a read model is in (serving, rebuilding, mismatch)",
            labels=["view", "state"],
        )
        rebuild = GaugeMetricFamily(
            "ledger_read_model_rebuild_position",
            "the position a rebuild of the read model has reached (0 when none runs)",
            labels=["view"],
        )
        states = {
            pb.VIEW_STATE_SERVING: "serving",
            pb.VIEW_STATE_REBUILDING: "rebuilding",
            pb.VIEW_STATE_MISMATCH: "mismatch",
        }
        for view in views:
            position.add_metric([view.name], view.position)
            lag.add_metric([view.name], view.lag)
            for value, name in states.items():
                state.add_metric([view.name, name], 1 if view.state == value else 0)
            rebuilding = view.rebuild_position or (view.position if view.state == pb.VIEW_STATE_REBUILDING else 0)
            rebuild.add_metric([view.name], rebuilding)
        yield from (position, lag, state, rebuild)
        signed = (
            self.publisher.store.head() if self.status.app.proofs is not None and self.publisher is not None else None
        )
        yield GaugeMetricFamily(
            "ledger_signed_head_size", "events covered by the latest signed head", value=signed.size if signed else 0
        )
        age = (datetime.now(UTC) - signed.signed_at).total_seconds() if signed else 0.0
        yield GaugeMetricFamily("ledger_signed_head_age_seconds", "seconds since the latest head was signed", value=age)
        if self.feeds is not None:
            yield GaugeMetricFamily("ledger_feeds_open", "StreamEvents feeds open now", value=self.feeds.held)
        app = self.status.app
        held = app.vault.store.held_erasures()
        now_us = int(app.clock.now().timestamp() * 1_000_000)
        yield GaugeMetricFamily("ledger_erasures_held", "erasures held for their retention period", value=len(held))
        yield GaugeMetricFamily(
            "ledger_erasures_due",
            "held erasures whose retention period has ended, not yet completed (the daily pass completes them)",
            value=sum(1 for _, due in held if due <= now_us),
        )


# How each scrape-time gauge is combined over ``serve --workers`` processes (prometheus-client's
# multiprocess modes, over the processes alive): positions and sizes the highest, lags and ages the
# lowest (the most advanced process's), feeds the sum.
_SHARED_MODES = {
    "ledger_read_model_lag_events": "livemin",
    "ledger_signed_head_age_seconds": "livemin",
    "ledger_feeds_open": "livesum",
}


class SharedGauges:
    """In a worker of ``serve --workers N --metrics``: the scrape-time gauges, read every ``interval``
    seconds and written where the parent's scrape sums the processes (``PROMETHEUS_MULTIPROC_DIR``)."""

    def __init__(self, ledger: LedgerCollector, interval: float) -> None:
        self.ledger, self.interval = ledger, interval
        self._registry = CollectorRegistry()
        self._gauges: dict[str, Gauge] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-gauges", daemon=True)

    def start(self) -> None:
        """Write the gauges now and every ``interval`` seconds."""
        self._thread.start()

    def stop(self) -> None:
        """Stop writing them."""
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:
                log.warning("could not read the ledger's gauges", exc_info=True)
            if self._stop.wait(self.interval):
                return

    def refresh(self) -> None:
        """Read the gauges once and write them."""
        for family in self.ledger.collect():
            for sample in family.samples:
                gauge = self._gauges.get(sample.name)
                if gauge is None:
                    gauge = self._gauges[sample.name] = Gauge(
                        sample.name,
                        family.documentation,
                        tuple(sample.labels),
                        registry=self._registry,
                        multiprocess_mode=_SHARED_MODES.get(sample.name, "livemax"),  # type: ignore[arg-type]
                    )
                (gauge.labels(**sample.labels) if sample.labels else gauge).set(sample.value)


def serve_shared(listen: str, directory: str) -> Callable[[], None]:
    """In the parent of ``serve --workers N``: serve GET /metrics on ``listen`` (HOST:PORT), summed over
    the workers' files in ``directory``; returns the stop."""
    from prometheus_client import multiprocess, start_http_server

    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    server, thread = start_http_server(int(port), host.strip("[]") or "0.0.0.0", registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop


class _Counted(Collector):
    """This process's counters and histograms (``REGISTRY``), in a server's scrape."""

    def collect(self) -> Iterator[Metric]:
        """Every series of ``REGISTRY``."""
        return iter(REGISTRY.collect())


def scrape_registry(ledger: LedgerCollector) -> CollectorRegistry:
    """What one server's ``/metrics`` serves: the process's counters and this server's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Counted())
    registry.register(ledger)
    return registry


def metrics_app(registry: CollectorRegistry, blocking: Blocking) -> ASGIApp:
    """``GET /metrics`` in Prometheus's text format (collected on the pool), 404 for anything else."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope.get("path") != "/metrics" or scope.get("method") not in ("GET", "HEAD"):
            body, status, kind = b"only GET /metrics is served here\n", 404, b"text/plain; charset=utf-8"
        else:
            body, status, kind = await blocking.run(generate_latest, registry), 200, CONTENT_TYPE_LATEST.encode()
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})

    return app
