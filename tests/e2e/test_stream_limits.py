"""Limits of long calls over an in-process server: idle streams are ended, budgets are given back."""

from __future__ import annotations

import dataclasses
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger.config import Limits
from ledger.policy import ConfigError
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import number, running_server
from tests.e2e.test_hostile_clients import blocked

CHECK = rpb.CheckNumberRequest(number=number(1), since_date="2026-01-01")
BEYOND = rpb.CheckNumberRequest(number=number(1), since_date="2026-01-01", min_position=10**12)


def probe_seconds(stubs, calls: int = 10) -> float:
    """The slowest of ``calls`` unary checks (each must answer)."""
    slowest = 0.0
    for _ in range(calls):
        started = time.perf_counter()
        stubs.recycling.CheckNumber(CHECK, timeout=3)
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


def test_streams_and_waits_hold_no_thread(settings, clock) -> None:
    # Four threads serve; 24 waits, 8 idle BatchCheck streams, 4 idle imports and 8 health watches stay
    # open, and unary calls are still answered at once: nothing open holds a thread.
    limits = dataclasses.replace(
        Limits.for_workers(4), max_streams_per_caller=12, max_waiting_checks_per_caller=24, stream_idle_seconds=30
    )
    stop = threading.Event()
    calls: list = []
    try:
        for stubs, _ in running_server(dataclasses.replace(settings, max_workers=4, limits=limits), clock):
            stubs.lifecycle.ProvisionNumbers(
                lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1)]), timeout=10
            )
            calls += [stubs.recycling.CheckNumber.future(BEYOND, timeout=20) for _ in range(24)]
            calls += [stubs.recycling.BatchCheck(blocked(stop), timeout=20) for _ in range(8)]
            calls += [stubs.lifecycle.ImportCommands(blocked(stop), timeout=20) for _ in range(4)]
            watch = health_pb2_grpc.HealthStub(stubs.channel).Watch
            calls += [watch(health_pb2.HealthCheckRequest(), timeout=20) for _ in range(8)]
            time.sleep(0.5)
            assert not [c for c in calls if c.done()], [c.code() for c in calls if c.done()]
            assert probe_seconds(stubs) < 1.0
    finally:
        stop.set()
        for call in calls:
            call.cancel()


def test_a_cancelled_wait_gives_its_place_back_at_once(settings, clock) -> None:
    limits = dataclasses.replace(Limits.for_workers(32), max_waiting_checks_per_caller=2)
    for stubs, _ in running_server(dataclasses.replace(settings, limits=limits), clock):
        stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1)]), timeout=10)
        waits = [stubs.recycling.CheckNumber.future(BEYOND) for _ in range(2)]  # no deadline
        time.sleep(0.3)
        try:
            stubs.recycling.CheckNumber(BEYOND, timeout=3)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "LEDGER_MAX_WAITING_CHECKS_PER_CALLER" in (e.details() or "")
        else:
            raise AssertionError("a third wait was accepted")
        for call in waits:
            call.cancel()
        time.sleep(0.1)
        again = [stubs.recycling.CheckNumber.future(BEYOND, timeout=0.6) for _ in range(2)]
        for call in again:
            try:
                call.result()
            except grpc.RpcError as e:
                # Waited for the read model (not refused): the places were given back at the cancel.
                assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), e.details()


def test_unary_calls_in_progress_are_bounded_per_caller(settings, clock) -> None:
    limits = dataclasses.replace(Limits.for_workers(32), max_calls_per_caller=3)
    for stubs, _ in running_server(dataclasses.replace(settings, limits=limits), clock):
        stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1)]), timeout=10)
        waits = [stubs.recycling.CheckNumber.future(BEYOND, timeout=5) for _ in range(3)]
        time.sleep(0.3)
        try:
            stubs.recycling.CheckNumber(CHECK, timeout=3)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "LEDGER_MAX_CALLS_PER_CALLER" in (e.details() or "")
        else:
            raise AssertionError("a fourth call in progress was accepted")
        for call in waits:
            call.cancel()
        time.sleep(0.1)
        assert stubs.recycling.CheckNumber(CHECK, timeout=3).result.number == number(1)


def test_an_idle_batch_check_is_ended_and_its_place_given_back(settings, clock) -> None:
    limits = dataclasses.replace(Limits.for_workers(32), stream_idle_seconds=0.5, max_streams_per_caller=1)
    stop = threading.Event()
    try:
        for stubs, _ in running_server(dataclasses.replace(settings, limits=limits), clock):
            started = time.monotonic()
            call = stubs.recycling.BatchCheck(blocked(stop), timeout=30)
            second = stubs.recycling.BatchCheck(blocked(stop), timeout=30)
            try:
                next(second)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "LEDGER_MAX_STREAMS_PER_CALLER" in (e.details() or "")
            try:
                next(call)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.details()
                assert "LEDGER_STREAM_IDLE_SECONDS" in (e.details() or "")
            assert 0.4 < time.monotonic() - started < 5
            # The place is free again: a new stream is accepted (and ended in its turn).
            again = stubs.recycling.BatchCheck(blocked(stop), timeout=30)
            try:
                next(again)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.details()
    finally:
        stop.set()


def test_limits_come_from_the_environment_and_a_caller_gets_at_most_the_total() -> None:
    limits = Limits.for_workers(32, {"LEDGER_MAX_STREAMS": "10", "LEDGER_STREAM_IDLE_SECONDS": "2.5"})
    assert limits.max_streams == 10 and limits.stream_idle_seconds == 2.5 and limits.max_health_watches == 64
    assert Limits.for_workers(32).max_calls_per_caller == 128
    for env in (
        {"LEDGER_MAX_STREAMS": "4"},  # fewer than LEDGER_MAX_STREAMS_PER_CALLER (8)
        {"LEDGER_MAX_STREAMS": "x"},
        {"LEDGER_MAX_WAITING_CHECKS": "0"},
    ):
        try:
            Limits.for_workers(32, env)
        except ConfigError as e:
            assert "LEDGER_" in str(e)
        else:
            raise AssertionError(env)
