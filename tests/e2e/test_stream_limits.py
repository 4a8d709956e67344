"""Limits of long calls over an in-process server: idle streams are ended, budgets are given back."""

from __future__ import annotations

import dataclasses
import threading
import time

import grpc

from ledger.config import ConfigError, Limits
from tests.conftest import running_server
from tests.e2e.test_hostile_clients import blocked


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


def test_limits_come_from_the_environment_and_must_leave_workers_for_unary_calls() -> None:
    limits = Limits.for_workers(32, {"LEDGER_MAX_STREAMS": "10", "LEDGER_STREAM_IDLE_SECONDS": "2.5"})
    assert limits.max_streams == 10 and limits.stream_idle_seconds == 2.5 and limits.max_health_watches == 2
    for env in ({"LEDGER_MAX_STREAMS": "30"}, {"LEDGER_MAX_STREAMS": "x"}, {"LEDGER_MAX_WAITING_CHECKS": "0"}):
        try:
            Limits.for_workers(32, env)
        except ConfigError as e:
            assert "LEDGER_" in str(e)
        else:
            raise AssertionError(env)
