"""The series a serving ledger counts (``serve --metrics``) and the calls that bump them.

The calls are counted and timed by the observers (``ledger.server.observer``); the ledger's own counters
are bumped where their events happen (a commit, an answer, a disclosure, a refusal); gauges are read at
scrape time (``ledger.server.scrape``), so the hot paths pay nothing for them.

Label values are bounded: methods, routes, codes, views, roles and limit names; never a number, an actor
or a purpose.
"""

from __future__ import annotations

from collections import Counter as Tally
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

from ledger.server.auth import current_caller

disable_created_metrics()  # the ``_created`` series double the output and no dashboard reads them

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
