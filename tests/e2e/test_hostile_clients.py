"""Hostile clients on loopback: each attack of issue 16's table against a real ``ledger serve`` process,
with a unary probe that must keep answering, the server's memory bounded, and SIGTERM still prompt."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2_grpc

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import history_service_pb2_grpc, ledger_pb2, recycling_service_pb2_grpc
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import number
from tests.e2e import test_auth_tls
from tests.e2e.test_auth_tls import bearer
from tests.procs import Serve

tokens = test_auth_tls.tokens  # one token per role
ATTACKERS = 40
PROBES = 40
# The probe's p99 must stay under this, or under 3 x its own p99 before the attack. A starved probe fails
# its 3 s deadline; the bound is that of a machine busy with other work (100-255 ms seen beside three CPU
# burners on two cores; 10-95 ms on a quiet one, printed by the test).
P99_BOUND = 0.500
RSS_BOUND_MB = 300
KNOWN = [number(500_000 + i) for i in range(2_000)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Probe:
    """Unary CheckNumber calls on a channel of their own, as a well-behaved checker would make."""

    def __init__(self, target: str, token: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = recycling_service_pb2_grpc.RecyclingServiceStub(self.channel)
        self.metadata = bearer(token)

    def run(self) -> tuple[float, float, int]:
        """(p50, p99, failures) over PROBES calls, 3 s deadline each."""
        times, failures = [], 0
        for _ in range(PROBES):
            start = time.perf_counter()
            try:
                self.stub.CheckNumber(
                    rpb.CheckNumberRequest(number=KNOWN[0], since_date="2026-01-01"), metadata=self.metadata, timeout=3
                )
            except grpc.RpcError:
                failures += 1
            times.append(time.perf_counter() - start)
            time.sleep(0.01)
        times.sort()
        return statistics.median(times), times[int(len(times) * 0.99) - 1 if len(times) < 100 else 98], failures


def blocked(stop: threading.Event) -> Iterator[object]:
    """A request stream that sends nothing until the test ends."""
    stop.wait()
    return
    yield


def big_requests(stop: threading.Event) -> Iterator[rpb.BatchCheckRequest]:
    queries = [ledger_pb2.CheckQuery(number=n, since_date="2026-01-01") for n in KNOWN] * 5
    while not stop.is_set():
        yield rpb.BatchCheckRequest(queries=queries)


def codes(calls: list[grpc.Future]) -> dict[str, int]:
    seen: dict[str, int] = {}
    for call in calls:
        code = call.code() if call.done() else None  # type: ignore[attr-defined]
        name = code.name if code is not None else "OPEN"
        seen[name] = seen.get(name, 0) + 1
    return seen


@pytest.fixture
def served(tmp_path: Path, tokens: tuple[Path, dict[str, str]]) -> Iterator[tuple[Serve, dict[str, str]]]:
    path, issued = tokens
    srv = Serve(f"sqlite:///{tmp_path}/ledger.db", extra=("--auth", str(path)))
    try:
        srv.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(request_id="p", numbers=KNOWN), metadata=bearer(issued["operator"]), timeout=60
        )
        yield srv, issued
    finally:
        srv.kill()


def attack(name: str, srv: Serve, issued: dict[str, str], stop: threading.Event) -> list[grpc.Future]:
    """Open the attack's calls; they last until ``stop`` is set or the server ends them."""
    channel = grpc.insecure_channel(srv.target)
    checker, compliance = bearer(issued["checker"]), bearer(issued["compliance"])
    recycling = recycling_service_pb2_grpc.RecyclingServiceStub(channel)
    if name == "health watches":
        watch = health_pb2_grpc.HealthStub(channel).Watch
        return [watch(health_pb2.HealthCheckRequest()) for _ in range(32)]
    if name == "idle reflection":
        info = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
        return [info(blocked(stop)) for _ in range(ATTACKERS)]  # type: ignore[arg-type]
    if name == "idle batch checks":
        return [recycling.BatchCheck(blocked(stop), metadata=checker) for _ in range(ATTACKERS)]  # type: ignore[arg-type]
    if name == "batch checks never read":
        return [recycling.BatchCheck(big_requests(stop), metadata=checker) for _ in range(ATTACKERS)]
    if name == "waits beyond the head":
        request = rpb.CheckNumberRequest(number=KNOWN[0], since_date="2026-01-01", min_position=10**12)
        return [recycling.CheckNumber.future(request, metadata=checker) for _ in range(ATTACKERS)]
    if name == "event feeds":
        feed = history_service_pb2_grpc.HistoryServiceStub(channel).StreamEvents
        return [feed(hpb.StreamEventsRequest(from_position=1), metadata=compliance) for _ in range(ATTACKERS)]
    raise AssertionError(name)


ATTACKS = (
    "health watches",
    "idle reflection",
    "idle batch checks",
    "batch checks never read",
    "waits beyond the head",
    "event feeds",
)


@pytest.mark.parametrize("name", ATTACKS)
def test_a_unary_probe_keeps_answering_during_the_attack(served, name: str) -> None:
    srv, issued = served
    probe = Probe(srv.target, issued["checker"])
    probe.run()  # warm up the channel and the server's caches
    base_p50, base_p99, _ = probe.run()
    stop = threading.Event()
    calls = attack(name, srv, issued, stop)
    try:
        time.sleep(1.0)  # let the attack settle: accepted calls hold what they hold, the rest are refused
        p50, p99, failures = probe.run()
        rss = rss_mb(srv.proc.pid)
        seen = codes(calls)
        print(f"{name}: baseline p50 {base_p50 * 1000:.1f} ms p99 {base_p99 * 1000:.1f} ms; during p50 "
              f"{p50 * 1000:.1f} ms p99 {p99 * 1000:.1f} ms; RSS {rss:.0f} MB; attack calls {seen}")  # fmt: skip
        assert failures == 0
        # The bound, for every row: a BatchCheck stream whose client stops reading stops the work
        # done for it (its next request is read once its last response is sent).
        assert p99 < max(P99_BOUND, 3 * base_p99), (p99, base_p99)
        assert rss < RSS_BOUND_MB
        assert seen.get("RESOURCE_EXHAUSTED", 0) >= ATTACKERS // 2, seen
        # A refused call says which limit it met.
        refused = next(c for c in calls if c.done() and c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED)  # type: ignore[attr-defined]
        assert "LEDGER_MAX_" in (refused.details() or "")  # type: ignore[attr-defined]
        # SIGTERM while the attack runs: exit 0 well within the grace period (10 s): streams that wait on
        # their client end at once (0.1-1.9 s measured; 10.5 s when they were left to the grace period).
        started = time.monotonic()
        assert srv.stop(timeout=20) == 0
        print(f"{name}: SIGTERM to exit {time.monotonic() - started:.1f} s")
        assert time.monotonic() - started < 6
    finally:
        stop.set()
        for call in calls:
            call.cancel()
        probe.channel.close()


def test_sigterm_ends_batch_check_streams_at_once_whatever_their_queued_work(tmp_path: Path) -> None:
    """64 BatchCheck streams whose client never reads, each with its next requests read and queued for the
    pool (far more work than the grace period: 10,000 checks each): SIGTERM ends them at once, so the server
    exits in seconds, not after its 10 s grace. Before, they were left to the grace period: 10.3 s under
    load (issue 23), and here even on a quiet machine since their queued work alone outlasts it."""
    streams = 64
    srv = Serve(
        f"sqlite:///{tmp_path}/ledger.db",
        env={"LEDGER_MAX_STREAMS_PER_CALLER": str(streams), "LEDGER_STREAM_WORK_PER_CALLER": "2"},
    )
    stop = threading.Event()
    calls: list[grpc.Future] = []
    channel = grpc.insecure_channel(srv.target)
    try:
        position = srv.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(request_id="p", numbers=KNOWN), timeout=60
        ).position
        ready = rpb.CheckNumberRequest(number=KNOWN[0], since_date="2026-01-01", min_position=position)
        srv.recycling.CheckNumber(ready, timeout=60)  # the read model serves
        recycling = recycling_service_pb2_grpc.RecyclingServiceStub(channel)
        calls = [recycling.BatchCheck(big_requests(stop)) for _ in range(streams)]
        # Every stream is admitted (and working) once one more is refused for the caller's stream budget.
        extra = recycling.BatchCheck(big_requests(stop))
        with pytest.raises(grpc.RpcError) as refused:
            next(extra)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        started = time.monotonic()
        assert srv.stop(timeout=30) == 0
        took = time.monotonic() - started
        print(f"{streams} never-read BatchCheck streams: SIGTERM to exit {took:.1f} s")
        # Generous for a busy machine (the work on the pool at the signal finishes, then the process exits),
        # and well under the 10 s grace period the streams used to be given.
        assert took < 6
    finally:
        stop.set()
        for call in calls:
            call.cancel()
        channel.close()
        srv.kill()


def test_sigterm_ends_event_feeds_whose_client_stopped_reading_at_once(tmp_path: Path) -> None:
    """Feeds of a ledger of 20,000 events whose clients never read: each send waits for room the client never
    gives, and a status goes out only after the messages queued before it. SIGTERM still ends them at once
    (their streams are reset), instead of after the 10 s grace."""
    srv = Serve(f"sqlite:///{tmp_path}/ledger.db")
    stop = threading.Event()
    calls: list[grpc.Future] = []
    channel = grpc.insecure_channel(srv.target)
    try:
        for i in range(10):
            srv.lifecycle.ProvisionNumbers(
                lpb.ProvisionNumbersRequest(request_id=f"p{i}", numbers=[number(i * 2000 + k) for k in range(2000)]),
                timeout=60,
            )
        feed = history_service_pb2_grpc.HistoryServiceStub(channel).StreamEvents
        calls = [feed(hpb.StreamEventsRequest(from_position=1)) for _ in range(8)]
        for call in calls:  # each admitted and sending (one event read, then never another)
            next(call)
        # One more is refused for the caller's stream budget.
        with pytest.raises(grpc.RpcError) as refused:
            next(feed(hpb.StreamEventsRequest(from_position=1)))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        started = time.monotonic()
        assert srv.stop(timeout=30) == 0
        took = time.monotonic() - started
        print(f"8 never-read feeds of 20,000 events: SIGTERM to exit {took:.1f} s")
        assert took < 6  # generous for a busy machine; the grace period is 10 s
    finally:
        stop.set()
        for call in calls:
            call.cancel()
        channel.close()
        srv.kill()
