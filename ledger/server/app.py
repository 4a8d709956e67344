"""Server wiring: services, interceptors, health, reflection, the HTTP and metrics ports, on the aio edge."""

from __future__ import annotations

import logging
from concurrent import futures
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from ledger.bootstrap import load_head_signer, row_seal
from ledger.server import metrics, recycling, scrape, tracing
from ledger.server.auth import AuthConfig, AuthInterceptor
from ledger.server.bridge import Blocking, SyncBridge
from ledger.server.edge import EdgeLoop, LedgerServer
from ledger.server.errors import ErrorInterceptor
from ledger.server.heads import HeadPublisher
from ledger.server.history import HistoryServicer
from ledger.server.http.app import HttpServer, bind, build_app
from ledger.server.http.gate import Gate
from ledger.server.identity import IdentityServicer
from ledger.server.lifecycle import LifecycleServicer
from ledger.server.limits import Budget, LimitInterceptor, Turns
from ledger.server.observer import Observer
from ledger.server.progress import Progress
from ledger.server.recycling import RecyclingServicer
from ledger.server.status import StatusReport
from ledger.server.tracing import TracingInterceptor
from ledger.v1 import (
    history_service_pb2,
    history_service_pb2_grpc,
    identity_service_pb2,
    identity_service_pb2_grpc,
    lifecycle_service_pb2,
    lifecycle_service_pb2_grpc,
    recycling_service_pb2,
)
from projections.audit import Auditor
from projections.db import ViewsDatabase
from projections.queries import ReadModels

if TYPE_CHECKING:
    from ledger.application import LedgerApplication
    from ledger.config import Limits, Settings
    from projections.projector import Projector

log = logging.getLogger("ledger")

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_NAMES = (
    lifecycle_service_pb2.DESCRIPTOR.services_by_name["LifecycleService"].full_name,
    history_service_pb2.DESCRIPTOR.services_by_name["HistoryService"].full_name,
    recycling_service_pb2.DESCRIPTOR.services_by_name["RecyclingService"].full_name,
    identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
)
RECYCLING = SERVICE_NAMES[2]


def create_server(
    settings: Settings, app: LedgerApplication, projector: Projector | None = None
) -> tuple[LedgerServer, int]:
    """Build a server with every service, health and reflection, bound to ``settings.listen``, on an
    event loop of its own (running in its thread from now on; ``stop(...).wait()`` ends it).

    With a ``projector`` (running in this process) checks wait on its batches for ``min_position``;
    without one (projections in another process, or checks read from a replica) one background poll of
    the read models' position wakes every waiter.
    """
    edge = EdgeLoop()
    try:
        return edge.run(_build(settings, app, projector, edge))
    except BaseException:
        edge.close()
        raise


async def _build(
    settings: Settings, app: LedgerApplication, projector: Projector | None, edge: EdgeLoop
) -> tuple[LedgerServer, int]:
    auth = AuthConfig.from_toml(settings.auth_file) if settings.auth_file else None
    limits = settings.stream_limits()
    executor = futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="rpc")
    blocking = Blocking(executor)
    # One caller's streams (BatchCheck requests, feed batches) share this many turns on the pool.
    turns = Turns(limits.stream_work_per_caller)
    budgets = LimitInterceptor(limits)
    # Authentication first: it answers from the metadata, before a message is read (see AuthInterceptor);
    # then the budgets, counted per authenticated caller; errors as statuses; plain methods on the pool.
    # The HTTP port's calls pass through these same interceptors (``Gate``).
    # Outermost, the observer: it counts, times and logs every gRPC call, refused ones too (the HTTP port's
    # calls pass the gate without it: its own observer counts them once, as HTTP).
    measured = settings.metrics_listen is not None or settings.metrics_shared
    observer = Observer(metrics=measured, access_log=settings.access_log)
    inner = [AuthInterceptor(auth), budgets, ErrorInterceptor(), SyncBridge(blocking)]
    # With tracing on (``tracing.start``), a span around all of it, refused calls too.
    outer = [observer] if tracing.tracer is None else [TracingInterceptor(tracing.tracer), observer]
    interceptors: list[grpc.aio.ServerInterceptor] = [*outer, *inner]
    # Bound first (before anything starts), so a port in use is a clear error at once.
    http_socket = bind(settings.http_listen, settings.reuse_port) if settings.http_listen else None
    metrics_socket = bind(settings.metrics_listen, False) if settings.metrics_listen else None
    grpc_server = grpc.aio.server(
        migration_thread_pool=executor,
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
            *connection_options(limits),
        ],
        # A backstop behind the budgets: beyond every budget together gRPC itself refuses a call.
        maximum_concurrent_rpcs=limits.max_calls
        + limits.max_streams
        + limits.max_health_watches
        + limits.max_reflection_streams,
    )
    server = Registered(grpc_server)  # keeps the handlers registered, for the HTTP port's Connect routes
    lifecycle_service_pb2_grpc.add_LifecycleServiceServicer_to_server(LifecycleServicer(app, blocking), server)
    identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(app), server)
    publisher = HeadPublisher(app, load_head_signer(settings), settings.policy.signed_head_interval_seconds)
    ledger_server: LedgerServer | None = None
    read_models = ReadModels(ViewsDatabase.for_store(settings.read_store or settings.store), row_seal(app), app.reader)
    status = StatusReport(app, settings, read_models, publisher, started_at=datetime.now(UTC))
    feeds = Budget("StreamEvents feeds", "LEDGER_MAX_FEEDS", limits.max_feeds)
    history_service_pb2_grpc.add_HistoryServiceServicer_to_server(
        HistoryServicer(
            app,
            blocking,
            feeds,
            turns,
            auditor=Auditor(app.recorder, app.mapper, ViewsDatabase.for_store(settings.store), row_seal(app)),
            publisher=publisher,
            stopping=lambda: ledger_server is not None and ledger_server.stopping,
            status=status,
        ),
        server,
    )
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, SERVING)
    # Checks serve once their read model has a complete generation; until then NOT_SERVING.
    await health_servicer.set(RECYCLING, NOT_SERVING)
    # With a local projector (and the views it writes), waits wake on its batches; otherwise (a replica, or
    # projections elsewhere) one background poll of the views' position serves every waiter.
    local = projector if settings.read_store is None else None
    progress = Progress(
        head=app.reader.max_position,
        views_position=lambda: read_models.position(("numbers",)),
        local=local is not None,
        on_serving=lambda ok: _report(edge, health_servicer, RECYCLING, SERVING if ok else NOT_SERVING),
    )
    if local is not None:
        progress.views_position = local.position
        local.listeners.append(progress.applied)
        progress.wake_projector = local.wake.set
    waits = Budget(
        "checks waiting for min_position",
        "LEDGER_MAX_WAITING_CHECKS",
        limits.max_waiting_checks,
        limits.max_waiting_checks_per_caller,
        "LEDGER_MAX_WAITING_CHECKS_PER_CALLER",
    )
    checks = RecyclingServicer(read_models, settings.policy, progress, blocking, waits, turns, clock=app.clock.now)
    recycling.add_to_server(checks, server)  # type: ignore[arg-type]
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        grpc_server,
    )
    http = None
    if http_socket is not None:
        gate = Gate(inner, server.handlers)
        http = HttpServer(
            build_app(gate, checks.answers, measured, settings.access_log, tracing.tracer), http_socket, settings
        )
    scrapes, shared = None, None
    if measured:
        # Counted where it happens (hooks of the application, the committer, the answers); the rest is read
        # when scraped. Without --metrics none of the hooks is set: nothing is counted.
        app.appended = metrics.EVENTS_APPENDED.inc
        app.disclosed = metrics.disclosed
        if app.committer is not None:
            app.committer.committed = metrics.COMMIT_BATCH.observe
        checks.answers.counted = metrics.checked
        gauges = scrape.LedgerCollector(status, publisher, feeds)
        if metrics_socket is not None:
            registry = scrape.scrape_registry(gauges)
            app_ = scrape.metrics_app(registry, blocking)
            scrapes = HttpServer(app_, metrics_socket, settings, tls_from_settings=False)
        else:  # a worker: the parent serves the sum of the workers' files
            shared = scrape.SharedGauges(gauges, settings.metrics_interval_seconds)
    if settings.tls_cert and settings.tls_key:
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
            root_certificates=settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None,
            require_client_auth=settings.tls_client_ca is not None,
        )
        port = grpc_server.add_secure_port(settings.listen, credentials)
    else:
        port = grpc_server.add_insecure_port(settings.listen)
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen} (pass another --listen HOST:PORT)")
    ledger_server = LedgerServer(
        edge,
        grpc_server,
        progress,
        executor,
        health_servicer,
        budgets.stop,
        publisher,
        http=http,
        drained=budgets.drained,
        metrics=scrapes,
        shared_gauges=shared,
    )
    return ledger_server, port


class Registered:
    """The gRPC server as the generated ``add_*Servicer_to_server`` functions see it: registers there and
    keeps each method's handler (``/service/Method``)."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self.server = server
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Register generic handlers (the generated code registers each service both ways)."""
        self.server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        """Register a service's handlers, and keep them."""
        self.server.add_registered_method_handlers(service, handlers)  # type: ignore[attr-defined]
        self.handlers.update({f"/{service}/{name}": h for name, h in handlers.items()})


def _report(edge: EdgeLoop, health: HealthServicer, service: str, status: int) -> None:
    """Set a service's health from any thread (the health servicer lives on the loop)."""
    edge.submit(health.set(service, status))  # type: ignore[arg-type]


def connection_options(limits: Limits) -> list[tuple[str, int]]:
    """Keepalive and idle limits: a dead peer's connection is found and closed, an unused one too."""
    keepalive_ms = int(limits.keepalive_seconds * 1000)
    return [
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", max(1000, keepalive_ms // 3)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.max_connection_idle_ms", int(limits.connection_idle_seconds * 1000)),
    ]
