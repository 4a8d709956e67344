"""Checks are right at every moment while a rebuild of the read models in another process is killed half
way and another one finishes, on both stores: zero wrong answers over the wire, counted. Rebuilds beside
the serving generation and a view whose schema changed are in tests/integration/test_generations.py."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from grpc_status import rpc_status

from ledger.v1 import ledger_pb2
from ledger.v1 import recycling_service_pb2 as rpb
from scripts import generate_dataset
from scripts.dataset import identifiers as synthetic
from tests.procs import Serve, ledger_head, project, views_query

STORES = ("sqlite", "postgres")
NUMBERS = 1500
DATES = ("2023-01-01", "2024-06-15", "2025-03-01", "2025-11-20")


@pytest.fixture
def db(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if store_kind == "postgres":
        from tests.pgserver import new_database

        return new_database(request.getfixturevalue("pg_admin_url"))
    return f"sqlite:///{tmp_path}/ledger.db"


def _queries() -> list[ledger_pb2.CheckQuery]:
    return [ledger_pb2.CheckQuery(number=synthetic.msisdn(i), since_date=d) for i in range(NUMBERS) for d in DATES]


def _answers(server: Serve, request: rpb.BatchCheckRequest) -> list[tuple]:
    (response,) = list(server.recycling.BatchCheck(iter([request]), timeout=30))
    return _compared(response)


def _compared(response: rpb.BatchCheckResponse) -> list[tuple]:
    """What an answer says, as compared across passes (positions left out: they move with the ledger)."""
    return [
        (
            r.status,
            r.clearance,
            tuple(r.outstanding_holders),
            r.last_disconnected_at.ToMicroseconds() if r.HasField("last_disconnected_at") else None,
        )
        for r in response.results
    ]


class Checker(threading.Thread):
    """Sends the same BatchCheck again and again and counts every answer against the baseline."""

    def __init__(self, target: str, request: rpb.BatchCheckRequest, baseline: list[tuple]) -> None:
        super().__init__(daemon=True)
        self.target, self.request, self.baseline = target, request, baseline
        self.stop = threading.Event()
        self.counts: Counter[str] = Counter()
        self.wrong: list[tuple] = []

    def run(self) -> None:
        from ledger.v1 import recycling_service_pb2_grpc

        channel = grpc.insecure_channel(self.target)
        stub = recycling_service_pb2_grpc.RecyclingServiceStub(channel)
        while not self.stop.is_set():
            try:
                (response,) = list(stub.BatchCheck(iter([self.request]), timeout=30))
            except grpc.RpcError as e:
                status = rpc_status.from_call(e)
                reason = ""
                for detail in status.details if status else ():
                    from google.rpc import error_details_pb2

                    info = error_details_pb2.ErrorInfo()
                    if detail.Unpack(info):
                        reason = info.reason
                self.counts[f"{e.code().name} {reason}".strip()] += 1
                time.sleep(0.05)
                continue
            got = _compared(response)
            bad = [
                (q.number, q.since_date, g, w)
                for q, g, w in zip(self.request.queries, got, self.baseline, strict=True)
                if g != w
            ]
            self.counts["answered"] += 1
            if bad:
                self.counts["wrong passes"] += 1
                self.wrong.extend(bad[:5])
            time.sleep(0.02)
        channel.close()


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_no_wrong_answer_while_a_rebuild_dies_and_another_finishes(db: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = Serve(db, log=log)
    generate_dataset.main(
        ["--target", server.target, "--numbers", str(NUMBERS), "--seed", "14", "--end", "2026-01-01", "--no-progress"]
    )
    head = ledger_head(db)
    request = rpb.BatchCheckRequest(queries=_queries())
    _wait(lambda: min(_positions(db).values(), default=0) >= head, 120, "the views to catch up")
    baseline = _answers(server, request)
    assert len(baseline) == len(request.queries)
    assert len({b[0] for b in baseline}) == 3  # NOT_CHANGED, CHANGED and NO_DATA all occur
    checker = Checker(server.target, request, baseline)
    checker.start()
    try:
        # A rebuild killed with SIGKILL half way, then another one started.
        worker = project(db, "--rebuild", wait=False)
        _wait(lambda: _building_position(db) > 0 or worker.poll() is not None, 120, "the rebuild to start")
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        building = _building_position(db)
        project(db, "--rebuild", "--once")
        assert _building_position(db) == 0
        _wait(lambda: checker.counts["answered"] >= 10, 120, "ten answered passes")
    finally:
        checker.stop.set()
        checker.join(60)
        server.stop()
    print(dict(checker.counts), "killed rebuild at", building, "of", head)
    assert checker.counts["answered"] >= 10
    assert checker.wrong == [] and checker.counts["wrong passes"] == 0
    # UNAVAILABLE without a reason, or a stream CANCELLED by the server's stop: the server stopping.
    allowed = {"answered", "UNAVAILABLE READ_MODEL_REBUILDING", "UNAVAILABLE", "CANCELLED"}
    assert set(checker.counts) <= allowed, checker.counts
    assert "Traceback" not in log.read_text()


def _positions(db: str) -> dict[str, int]:
    return {str(v): int(p) for v, p in views_query(db, "SELECT view, position FROM rm_generations WHERE state='ready'")}


def _commit_version_change(db: str) -> None:
    rows = views_query(db, "SELECT version FROM rm_generations WHERE view='numbers' AND state='ready'")
    from projections.views import NumbersView

    assert rows and all(int(v) == NumbersView.version - 1 for (v,) in rows), rows


def _serving_version(db: str) -> bool:
    from projections.views import NumbersView

    rows = views_query(db, "SELECT version FROM rm_generations WHERE view='numbers' AND state='ready'")
    return any(int(v) == NumbersView.version for (v,) in rows)


def _building_position(db: str) -> int:
    rows = views_query(db, "SELECT max(position) FROM rm_generations WHERE state='building'")
    return int(rows[0][0] or 0) if rows else 0
