"""What a check stands on, on the wire: bounded, cancellable waits for ``min_position``; views bound to their
ledger (READ_MODEL_MISMATCH, READ_MODEL_REBUILDING and the recycling service's health; the cases through the
projector are in tests/integration/test_views_bound.py).
The audit of the read models against the log and their repair are in tests/integration/test_view_rows.py
(VerifyReadModels on the wire in tests/e2e/test_view_row_tampering.py)."""

from __future__ import annotations

import shutil
import signal
import time
from datetime import date
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import number
from tests.procs import Serve, ledger_head, project, views_query

RECYCLING = "ledger.v1.RecyclingService"


def _reason(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return error.code(), info.reason, dict(info.metadata)
    return error.code(), "", {}


def _check(stub, msisdn: str, since: str = "2026-01-01", **kwargs) -> ledger_pb2.CheckResult:
    return stub.CheckNumber(rpb.CheckNumberRequest(number=msisdn, since_date=since, **kwargs), timeout=10).result


def _disconnected(stubs, msisdn: str, seq: int) -> None:
    stubs.onboard(msisdn, seq)
    stubs.lifecycle.DisconnectNumber(
        lpb.DisconnectNumberRequest(
            request_id=stubs.rid(), number=msisdn, reason=ledger_pb2.DISCONNECT_REASON_SUBSCRIBER_REQUEST
        )
    )


# -- waiting for min_position -------------------------------------------------------------------------------


def test_min_position_beyond_the_head_without_a_deadline_answers_behind_in_about_five_seconds(server) -> None:
    stubs, _ = server
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=stubs.rid(), numbers=[number(1)]))
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        stubs.recycling.CheckNumber(
            rpb.CheckNumberRequest(number=number(1), since_date="2026-01-01", min_position=10**9)
        )
    elapsed = time.monotonic() - started
    assert _reason(caught.value)[:2] == (grpc.StatusCode.UNAVAILABLE, "READ_MODEL_BEHIND")
    assert 4.5 <= elapsed <= 10.0, elapsed  # the 5 s default wait, with room for a busy machine


def test_min_position_with_a_deadline_answers_behind_before_it(server) -> None:
    stubs, _ = server
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=stubs.rid(), numbers=[number(1)]))
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        stubs.recycling.CheckNumber(
            rpb.CheckNumberRequest(number=number(1), since_date="2026-01-01", min_position=10**9), timeout=1.5
        )
    assert _reason(caught.value)[:2] == (grpc.StatusCode.UNAVAILABLE, "READ_MODEL_BEHIND")
    assert time.monotonic() - started < 1.5


def test_answers_carry_the_head_and_a_reached_position_answers_at_once(server) -> None:
    stubs, _ = server
    position = stubs.lifecycle.ProvisionNumbers(
        lpb.ProvisionNumbersRequest(request_id=stubs.rid(), numbers=[number(1)])
    ).position
    result = _check(stubs.recycling, number(1), min_position=position)
    assert result.as_of_position >= position and result.head_position >= result.as_of_position
    (response,) = list(
        stubs.recycling.BatchCheck(
            iter([rpb.BatchCheckRequest(queries=[ledger_pb2.CheckQuery(number=number(1), since_date="2026-01-01")])])
        )
    )
    assert response.results[0].head_position >= position


def test_cancelled_waits_leave_the_server_answering_and_sigterm_exits_within_the_grace(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/ledger.db"
    server = Serve(db)
    server.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1)]))
    far = rpb.CheckNumberRequest(number=number(1), since_date="2026-01-01", min_position=10**9)
    calls = [server.recycling.CheckNumber.future(far) for _ in range(40)]
    time.sleep(1.0)
    for call in calls:
        call.cancel()
    cancelled_at = time.monotonic()
    result = _check(server.recycling, number(1))  # a normal check, right after
    # (Generous for a busy machine: the cancelled waits would hold it for their 5 s otherwise.)
    assert time.monotonic() - cancelled_at < 3.0 and result.number == number(1)
    # SIGTERM while 40 waits are in progress: they answer at once, the server exits 0 well within the grace.
    calls = [server.recycling.CheckNumber.future(far) for _ in range(40)]
    time.sleep(1.0)
    server.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert server.proc.wait(15) == 0
    assert time.monotonic() - started < 10.0  # the grace period (LEDGER default 10 s)
    for call in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call.result(timeout=5)
        # Answered at the stop, or refused at once beyond the budget of waiting checks (LEDGER_MAX_WAITING_CHECKS).
        assert caught.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        )
    server.channel.close()


# -- views bound to their ledger -----------------------------------------------------------------------------


def test_a_restored_older_ledger_beside_newer_views_is_refused_until_rebuilt(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/ledger.db"
    server = Serve(db, log=tmp_path / "server.log")
    server.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1), number(2)]))
    assert server.stop() == 0
    backup = tmp_path / "backup"
    backup.mkdir()
    for path in tmp_path.glob("ledger.db*"):
        shutil.copy(path, backup / path.name)
    server = Serve(db, log=tmp_path / "server.log")
    position = 0
    for i in range(3):
        position = server.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(request_id=f"q{i}", numbers=[number(10 + i)])
        ).position
    assert _check(server.recycling, number(10), min_position=position).as_of_position == position
    assert server.stop() == 0
    for path in tmp_path.glob("ledger.db*"):
        path.unlink()
    for path in backup.iterdir():
        shutil.copy(path, tmp_path / path.name)  # the older ledger, the newer views stay

    server = Serve(db, log=tmp_path / "server.log")
    with pytest.raises(grpc.RpcError) as caught:
        _check(server.recycling, number(1))
    assert _reason(caught.value)[:2] == (grpc.StatusCode.UNAVAILABLE, "READ_MODEL_MISMATCH")
    health = health_pb2_grpc.HealthStub(server.channel)
    recycling = health_pb2.HealthCheckRequest(service=RECYCLING)
    deadline = time.monotonic() + 10  # the server's progress thread notices within its interval
    while health.Check(recycling).status != health_pb2.HealthCheckResponse.NOT_SERVING:
        assert time.monotonic() < deadline, "the recycling service stayed SERVING beside mismatched views"
        time.sleep(0.05)
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
    project(db, "--rebuild", "--once")  # in another process: the server answers from its generation
    today = date.today().isoformat()
    result = _check(server.recycling, number(1), today, min_position=ledger_head(db))
    assert result.status != ledger_pb2.CHECK_STATUS_NO_DATA and result.as_of_position == ledger_head(db)
    assert server.stop() == 0


def test_no_generation_to_serve_is_rebuilding_with_progress_and_not_serving(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/ledger.db"
    server = Serve(db)
    server.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1)]))
    assert server.stop() == 0
    # As if an older release had built the numbers view; this server reads it with no projector of its own.
    views_query(db, "UPDATE rm_generations SET version = version - 1 WHERE view = 'numbers'")
    server = Serve(db, extra=("--no-projections",))
    with pytest.raises(grpc.RpcError) as caught:
        _check(server.recycling, number(1))
    code, reason, metadata = _reason(caught.value)
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "READ_MODEL_REBUILDING")
    assert metadata["view"] == "numbers" and metadata["head_position"] == str(ledger_head(db))
    health = health_pb2_grpc.HealthStub(server.channel)
    time.sleep(0.7)
    assert (
        health.Check(health_pb2.HealthCheckRequest(service=RECYCLING)).status
        == health_pb2.HealthCheckResponse.NOT_SERVING
    )
    project(db, "--prepare")
    time.sleep(0.7)
    assert (
        health.Check(health_pb2.HealthCheckRequest(service=RECYCLING)).status == health_pb2.HealthCheckResponse.SERVING
    )
    assert _check(server.recycling, number(1)).as_of_position == ledger_head(db)
    assert server.stop() == 0
