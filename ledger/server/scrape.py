"""What ``/metrics`` serves: the ledger's gauges read at scrape time, shared over ``serve --workers``, and
the metrics port.

Gauges (head, views, signed head, feeds, held erasures) are read at scrape time by ``LedgerCollector``
from what the server already knows, so the hot paths pay nothing for them; a scrape adds them to the
process's counters (``ledger.server.metrics.REGISTRY``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ledger.server.metrics import REGISTRY

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from ledger.server.bridge import Blocking
    from ledger.server.heads import HeadPublisher
    from ledger.server.status import StatusReport

log = logging.getLogger(__name__)


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
