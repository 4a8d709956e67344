"""Read models rebuilt while they serve: wrong answers (must be none), check throughput meanwhile, and
the audit's rate.

A checker sends the same BatchCheck passes while ``ledger project --rebuild --once`` runs in another
process; every answer is compared with the one before the rebuild (the ledger is not written
meanwhile). The rebuild's events per second are set beside the raw select + decode ceiling by the
caller, which measures that ceiling with the server stopped.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import grpc

from bench.rows import Rows
from ledger.v1 import ledger_pb2
from ledger.v1 import recycling_service_pb2 as rpb

SINCE = "2025-01-01"
BATCH = 1000


def _pass(stub: Any, numbers: list[str]) -> list[tuple[Any, ...]]:
    requests = [
        rpb.BatchCheckRequest(
            queries=[ledger_pb2.CheckQuery(number=n, since_date=SINCE) for n in numbers[i : i + BATCH]]
        )
        for i in range(0, len(numbers), BATCH)
    ]
    return [
        (r.status, r.clearance, tuple(r.outstanding_holders), r.last_disconnected_at.seconds)
        for response in stub.BatchCheck(iter(requests), timeout=600)
        for r in response.results
    ]


def rebuild_while_serving(label: str, db: str, stub: Any, numbers: list[str], env: dict[str, str], rows: Rows) -> float:
    """Rebuild every read model beside the serving ones while checks run; returns the rebuild's seconds."""
    baseline = _pass(stub, numbers)
    start = time.perf_counter()
    _pass(stub, numbers)
    quiet = len(numbers) / (time.perf_counter() - start)
    command = [sys.executable, "-m", "ledger", "project", "--db", db, "--rebuild", "--once", "--log-level", "WARNING"]
    started = time.perf_counter()
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    wrong = unavailable = answered = 0
    checking = 0.0
    while worker.poll() is None:
        t0 = time.perf_counter()
        try:
            got = _pass(stub, numbers)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            unavailable += 1
            time.sleep(0.05)
            continue
        checking += time.perf_counter() - t0
        answered += len(got)
        wrong += sum(1 for g, b in zip(got, baseline, strict=True) if g != b)
    seconds = time.perf_counter() - started
    if worker.returncode != 0:
        raise RuntimeError(f"the rebuild failed with exit code {worker.returncode}")
    rows.add(f"{label} rebuild while serving: wrong answers ({answered} checked)", wrong, "answers", None, "= 0")
    rows.add(f"{label} rebuild while serving: UNAVAILABLE passes", unavailable, "passes", None, "= 0")
    during = answered / checking if checking else 0.0
    rows.add(f"{label} BatchCheck during a rebuild (vs without)", during, "numbers/s", quiet, "")
    return seconds


def audit_rate(label: str, db: str, sample: int, rows: Rows) -> None:
    """``audit-views`` over a random sample of numbers: numbers per second (the server stopped)."""
    from bench.ceilings import open_store
    from ledger.bootstrap import row_seal
    from ledger.config import StoreConfig
    from projections.audit import Auditor
    from projections.db import ViewsDatabase

    app = open_store(db)
    auditor = Auditor(app.recorder, app.mapper, ViewsDatabase.for_store(StoreConfig.from_url(db)), row_seal(app))
    try:
        start = time.perf_counter()
        report = auditor.audit(sample=sample, seed=3)
        seconds = time.perf_counter() - start
    finally:
        auditor.close()
        app.close()
        app.vault.store.close()
    if not report.ok:
        raise RuntimeError(f"the audit found {len(report.mismatched_numbers)} numbers whose views differ")
    rows.add(f"{label} audit-views ({report.numbers_checked} numbers)", report.numbers_checked / seconds,
             "numbers/s", None, "")  # fmt: skip
