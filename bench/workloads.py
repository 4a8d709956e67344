"""Workloads, run against the ledger and the bare server alike: calls, batches, histories."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from bench.bench_commands import pct
from ledger.domain.subscriber import Subscriber
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import (
    ledger_pb2,
)
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from scripts.dataset import identifiers as synthetic

# Workloads, run against the ledger and the bare server alike.


# The bench's own SIMs are numbered from here: far above any dataset's (generate_dataset numbers a
# person's SIMs from person * 4), so an ICCID never collides with one the dataset left in service.
BENCH_SIMS = 900_000_000_000


def activate_calls(
    stub: Any, prefix: str, numbers: list[str], sids: list[str], first_person: int, spread: Sequence[Any] = ()
) -> list[Callable[[], Any]]:
    """One ActivateSim call per (number, subscriber), each with a SIM of its own; with ``spread`` (stubs
    over connections of their own), call i goes through ``spread[i % len(spread)]`` instead of ``stub``."""
    calls: list[Callable[[], Any]] = []
    for i, (msisdn, sid) in enumerate(zip(numbers, sids, strict=True)):
        if spread:
            stub = spread[i % len(spread)]
        sim = synthetic.iccid(BENCH_SIMS + first_person + i)
        request = lpb.ActivateSimRequest(
            request_id=f"{prefix}-act-{i}",
            number=msisdn,
            subscriber_id=sid,
            iccid=sim,
            imsi=synthetic.imsi(i),
            channel="retail",
            agent_id="bench",
        )
        calls.append(functools.partial(stub.ActivateSim, request, timeout=60))
    return calls


def register_calls(stub: Any, prefix: str, count: int) -> list[Callable[[], Any]]:
    """RegisterSubscriber then VerifyIdentity per call, one call per command (what ImportCommands is
    measured against)."""

    def register_and_verify(rid: str, i: int) -> tuple[Any, Any]:
        return (
            stub.RegisterSubscriber(
                lpb.RegisterSubscriberRequest(
                    request_id=rid,
                    full_name="One",
                    id_type=ledger_pb2.ID_TYPE_RESIDENT_ID_CARD,
                    id_number=synthetic.resident_id(6_000_000 + i),
                )
            ),
            stub.VerifyIdentity(
                lpb.VerifyIdentityRequest(
                    request_id=rid + "-v",
                    subscriber_id=str(Subscriber.id_for_request(rid)),
                    method=ledger_pb2.VERIFICATION_METHOD_ID_CARD_READER,
                    channel="retail",
                    agent_id="bench",
                    evidence_ref="e",
                )
            ),
        )

    return [functools.partial(register_and_verify, f"{prefix}-one-{i}", i) for i in range(count)]


def batch_check_rate(stub: Any, numbers: list[str], batch: int) -> float:
    """BatchCheck numbers per second over ``numbers`` in batches of ``batch``."""
    requests = [
        rpb.BatchCheckRequest(
            queries=[ledger_pb2.CheckQuery(number=n, since_date="2025-01-01") for n in numbers[i : i + batch]]
        )
        for i in range(0, len(numbers), batch)
    ]
    start = time.perf_counter()
    answered = sum(len(r.results) for r in stub.BatchCheck(iter(requests), timeout=600))
    return answered / (time.perf_counter() - start)


def sim_swap_calls(stub: Any, numbers: list[str], rpc: str) -> list[Callable[[], Any]]:
    """One GetSimSwap or CheckSimSwap (24 hours) call per number."""
    if rpc == "GetSimSwap":
        return [functools.partial(stub.GetSimSwap, rpb.GetSimSwapRequest(number=n), timeout=60) for n in numbers]
    requests = [rpb.CheckSimSwapRequest(number=n, max_age_hours=24) for n in numbers]
    return [functools.partial(stub.CheckSimSwap, r, timeout=60) for r in requests]


def served_numbers(stub: Any, numbers: list[str]) -> list[str]:
    """Those of ``numbers`` whose SIM swap is answered here (single calls refuse a number unknown here or
    ported out: its SIM is another operator's), in order."""
    requests = [
        rpb.BatchCheckSimSwapRequest(
            queries=[rpb.SimSwapQuery(number=n, max_age_hours=24) for n in numbers[i : i + 1000]]
        )
        for i in range(0, len(numbers), 1000)
    ]
    responses = stub.BatchCheckSimSwap(iter(requests), timeout=600)
    return [r.number for response in responses for r in response.results if r.answer == rpb.SIM_SWAP_ANSWER_ANSWERED]


def batch_sim_swap_rate(stub: Any, numbers: list[str], batch: int) -> float:
    """BatchCheckSimSwap numbers per second over ``numbers`` in batches of ``batch``."""
    requests = [
        rpb.BatchCheckSimSwapRequest(
            queries=[rpb.SimSwapQuery(number=n, max_age_hours=24) for n in numbers[i : i + batch]]
        )
        for i in range(0, len(numbers), batch)
    ]
    start = time.perf_counter()
    answered = sum(len(r.results) for r in stub.BatchCheckSimSwap(iter(requests), timeout=600))
    return answered / (time.perf_counter() - start)


def prepare_subscribers(
    stub: Any, prefix: str, count: int, first_person: int, numbers: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Numbers provisioned and verified subscribers registered (through ImportCommands) for activation."""
    numbers = numbers or [f"+86137{first_person + i:08d}" for i in range(count)]
    commands = [
        lpb.ImportCommand(
            provision_numbers=lpb.ProvisionNumbersRequest(
                request_id=f"{prefix}-prov-{k}", numbers=numbers[k : k + 5000]
            )
        )
        for k in range(0, count, 5000)
    ]
    sids = []
    for i in range(count):
        rid = f"{prefix}-reg-{i}"
        sid = str(Subscriber.id_for_request(rid))
        sids.append(sid)
        commands.append(
            lpb.ImportCommand(
                register_subscriber=lpb.RegisterSubscriberRequest(
                    request_id=rid,
                    full_name=f"Bench {i}",
                    id_type=ledger_pb2.ID_TYPE_RESIDENT_ID_CARD,
                    id_number=synthetic.resident_id(first_person + i),
                )
            )
        )
        commands.append(
            lpb.ImportCommand(
                verify_identity=lpb.VerifyIdentityRequest(
                    request_id=f"{prefix}-ver-{i}",
                    subscriber_id=sid,
                    method=ledger_pb2.VERIFICATION_METHOD_ID_CARD_READER,
                    channel="retail",
                    agent_id="bench",
                    evidence_ref="e",
                )
            )
        )
    requests = [lpb.ImportCommandsRequest(commands=commands[k : k + 2000]) for k in range(0, len(commands), 2000)]
    for response in stub.ImportCommands(iter(requests), timeout=600):
        bad = [r.error.reason for r in response.results if r.HasField("error")]
        if bad:
            raise RuntimeError(f"preparation refused: {bad[:3]}")
    return numbers, sids


def long_history(stub: Any, msisdn: str, pairs: int, person: int) -> None:
    """A number with an activation and ``pairs`` suspend/resume pairs (2 * pairs + 2 events)."""
    numbers, sids = prepare_subscribers(stub, f"hist-{msisdn}", 1, person, [msisdn])
    stub.ActivateSim(
        lpb.ActivateSimRequest(
            request_id=f"hist-act-{msisdn}",
            number=numbers[0],
            subscriber_id=sids[0],
            iccid=synthetic.iccid(BENCH_SIMS + person),
            imsi=synthetic.imsi(person),
            channel="retail",
            agent_id="bench",
        )
    )
    commands = []
    for k in range(pairs):
        commands.append(
            lpb.ImportCommand(
                suspend_number=lpb.SuspendNumberRequest(
                    request_id=f"hist-s-{msisdn}-{k}",
                    number=numbers[0],
                    reason=ledger_pb2.SUSPENSION_REASON_NON_PAYMENT,
                )
            )
        )
        commands.append(
            lpb.ImportCommand(
                resume_number=lpb.ResumeNumberRequest(request_id=f"hist-r-{msisdn}-{k}", number=numbers[0])
            )
        )
    for _ in stub.ImportCommands(iter([lpb.ImportCommandsRequest(commands=commands)]), timeout=600):
        pass
    return None


def settle(lifecycle: Any, recycling: Any) -> None:
    """Wait until the server's projector has applied everything written so far, so that what is measured
    next does not share the cores with a catch-up."""
    position = lifecycle.ProvisionNumbers(
        lpb.ProvisionNumbersRequest(request_id=f"settle-{time.time_ns()}", numbers=["+8613500000000"])
    ).position
    for _ in range(120):
        try:
            recycling.CheckNumber(
                rpb.CheckNumberRequest(number="+8613500000000", since_date="2025-01-01", min_position=position),
                timeout=30,
            )
            return
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise


def wait_idle(pid: int, limit: float = 600.0) -> float:
    """Wait until a server process stays idle for a second (its start-up work done: on a large ledger, the
    scan for registrations without a data key takes a while); returns the seconds waited."""
    from bench.http import cpu_seconds

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        used = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - used < 0.05:
            break
    return time.perf_counter() - t0


def command_latency(stub: Any, msisdn: str, pairs: int) -> float:
    """Median latency of SuspendNumber and ResumeNumber calls on one number (in service before and after)."""
    latencies = []
    for k in range(pairs):
        for request in (
            lpb.SuspendNumberRequest(
                request_id=f"lat-s-{msisdn}-{k}", number=msisdn, reason=ledger_pb2.SUSPENSION_REASON_LOST_SIM
            ),
            lpb.ResumeNumberRequest(request_id=f"lat-r-{msisdn}-{k}", number=msisdn),
        ):
            t0 = time.perf_counter()
            (stub.SuspendNumber if isinstance(request, lpb.SuspendNumberRequest) else stub.ResumeNumber)(request)
            latencies.append(time.perf_counter() - t0)
    return pct(latencies, 50)


def read_your_writes_latency(lifecycle: Any, recycling: Any, prefix: str, numbers: list[str]) -> float:
    """Median latency of a CheckNumber that waits (``min_position``) for the command just acknowledged,
    one number each: how soon a caller reads its own write from the read models."""
    latencies = []
    for k, msisdn in enumerate(numbers):
        request = lpb.ProvisionNumbersRequest(request_id=f"{prefix}-ryw-{k}", numbers=[msisdn])
        position = lifecycle.ProvisionNumbers(request, timeout=60).position
        t0 = time.perf_counter()
        recycling.CheckNumber(
            rpb.CheckNumberRequest(number=msisdn, since_date="2020-01-01", min_position=position), timeout=60
        )
        latencies.append(time.perf_counter() - t0)
    return pct(latencies, 50)


def history_latency(stub: Any, msisdn: str, calls: int) -> tuple[float, float, int]:
    """GetNumberHistory latency (p50 and p99, as ``pct`` gives them) and the events per history."""
    latencies = []
    events = 0
    for _ in range(calls):
        t0 = time.perf_counter()
        events = sum(1 for _ in stub.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn), timeout=60))
        latencies.append(time.perf_counter() - t0)
    return pct(latencies, 50), pct(latencies, 99), events
