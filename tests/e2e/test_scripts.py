"""Batch scripts against a real server: recycling_check, release_due_numbers, generate_dataset; a projection
process killed mid-catch-up; the quick benchmark. The offline jobs over the views (rebuild_projections,
compliance_report), views of older releases and the check answers against the tenure rows are in
tests/integration/test_projector_views.py."""

from __future__ import annotations

import base64
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from ledger.application.commands import ProvisionNumbers
from ledger.application.pipeline import execute
from ledger.bootstrap import open_ledger
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from scripts import (
    generate_dataset,
    recycling_check,
    release_due_numbers,
)
from tests import views as vt
from tests.conftest import number
from tests.e2e.test_recycling_grpc import History, at

ROOT = Path(__file__).resolve().parents[2]


def test_recycling_check_csv_with_malformed_rows(server, tmp_path, capsys) -> None:
    stubs, _ = server
    stubs.onboard(number(1), seq=1)
    provisioned = stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p2", numbers=[number(2)]))
    # The job checks through the read models: they see the provisioning first (as onboarding waits).
    assert stubs.projector.wait_for(provisioned.position, 30)
    source = tmp_path / "in.csv"
    source.write_text(
        "number,since_date,customer\n"
        f"{number(1)},2026-01-05,alice\n"
        "not-a-number,2026-01-05,bob\n"
        f"{number(2)},2026-01-05,carol\n"
        f"{number(1)},05/01/2026,dave\n"
        f"{number(3)},2026-01-05,erin\n"
        f"{number(1)},2026-01-04,frank\n"
    )
    out = tmp_path / "out.csv"
    code = recycling_check.main([str(source), "-o", str(out), "--target", stubs.target, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "line 3: skipped" in err and "line 5: skipped" in err and "skipped 2 malformed rows" in err
    rows = list(csv.DictReader(out.open()))
    assert [r["customer"] for r in rows] == ["alice", "carol", "erin", "frank"]
    assert [r["status"] for r in rows] == ["NOT_CHANGED", "CHANGED", "NO_DATA", "NO_DATA"]
    assert rows[0]["phone_number_changed"] == "false" and rows[1]["phone_number_changed"] == "true"
    assert "checked 4 numbers" in err


def test_recycling_check_twice_dialect_writes_the_code(server, tmp_path) -> None:
    stubs, _ = server
    h = History(stubs)
    h.call("ProvisionNumbers", numbers=[number(1), number(2)], occurred_at=at("2026-01-01T08:00:00"))
    h.holder(number(1), 1, "2026-01-03T10:00:00")
    stubs.recycling.CheckNumber(
        rpb.CheckNumberRequest(number=number(1), since_date="2026-01-03", min_position=h.last), timeout=10
    )
    source = tmp_path / "in.csv"
    source.write_text(
        "number,since_date\n"
        f"{number(1)},2026-01-02\n"  # a gap that day, held now: recycled
        f"{number(1)},2026-01-03\n"  # held since: not recycled
        f"{number(2)},2026-01-02\n"  # nobody holds it now: cancelled
        f"{number(3)},2026-01-02\n"  # unknown: cannot tell
    )
    out = tmp_path / "out.csv"
    args = [str(source), "-o", str(out), "--target", stubs.target, "--no-progress", "--dialect", "twice"]
    assert recycling_check.main(args) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["status"], r["held_now"], r["twice_code"]) for r in rows] == [
        ("CHANGED", "true", "1"),
        ("NOT_CHANGED", "true", "2"),
        ("CHANGED", "false", "3"),
        ("NO_DATA", "false", "0"),
    ]
    assert recycling_check.main([str(source), "-o", str(out), "--target", stubs.target, "--no-progress"]) == 0
    assert "twice_code" not in out.read_text().splitlines()[0]  # the CAMARA columns alone by default


def test_recycling_check_json_lines(server, tmp_path, capsys) -> None:
    stubs, _ = server
    stubs.onboard(number(1), seq=1)
    source = tmp_path / "in.jsonl"
    source.write_text(
        orjson.dumps({"number": number(1), "since_date": "2026-01-05", "ref": 1}).decode() + "\n{broken\n"
    )
    out = tmp_path / "out.jsonl"
    assert recycling_check.main([str(source), "-o", str(out), "--target", stubs.target, "--no-progress"]) == 1
    (row,) = [orjson.loads(line) for line in out.read_text().splitlines()]
    assert row["ref"] == 1 and row["status"] == "NOT_CHANGED" and row["clearance"] == "NOT_APPLICABLE"


def test_release_due_numbers_is_idempotent(server, settings, clock, capsys) -> None:
    stubs, app = server
    due, pending, early = number(10), number(11), number(12)
    for i, msisdn in enumerate((due, pending, early)):
        _, tenure, _ = stubs.onboard(msisdn, seq=20 + i)
        if msisdn == early:
            clock.advance(days=60)
        stubs.lifecycle.DisconnectNumber(lpb.DisconnectNumberRequest(request_id=f"d{i}", number=msisdn, reason=1))
        for holder in ("crm", "billing", "voicemail"):
            if msisdn == pending and holder == "voicemail":
                continue
            stubs.lifecycle.ConfirmDataCleared(
                lpb.ConfirmDataClearedRequest(
                    request_id=f"c{i}{holder}", number=msisdn, tenure_id=tenure, holder=holder, evidence_ref="x"
                )
            )
    position = app.reader.max_position()
    assert stubs.projector.wait_for(position, 10)
    # The script runs later in real time; the ledger's clock says 100 days after the first disconnections.
    clock.advance(days=40)
    db = f"sqlite:///{settings.store.sqlite_path}"
    real_now = datetime.now(UTC)
    fake_now = clock.now()
    release_due_numbers.datetime = _FrozenDatetime(fake_now)  # type: ignore[attr-defined]
    try:
        assert release_due_numbers.main(["--db", db, "--target", stubs.target]) == 0
        first = capsys.readouterr().out
        assert f"released {due}" in first and pending not in first and early not in first
        assert "released 1" in first
        after = app.reader.max_position()
        assert stubs.projector.wait_for(after, 10)
        assert release_due_numbers.main(["--db", db, "--target", stubs.target]) == 0
        assert "nothing due" in capsys.readouterr().out
        assert app.reader.max_position() == after
    finally:
        release_due_numbers.datetime = datetime  # type: ignore[attr-defined]
    assert real_now <= datetime.now(UTC)
    state = stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=due)).number_state
    assert state.state == 1  # AVAILABLE


class _FrozenDatetime:
    """Stands in for ``datetime`` inside the script so it sees the ledger's fake clock."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self, tz=None) -> datetime:
        return self._now


def test_generate_dataset_is_deterministic_and_rerunnable(server, capsys) -> None:
    stubs, app = server
    args = [
        "--target",
        stubs.target,
        "--numbers",
        "25",
        "--years",
        "3",
        "--seed",
        "5",
        "--end",
        "2026-01-01",
        "--no-progress",
        "--concurrency",
        "4",
    ]
    assert generate_dataset.main(args) == 0
    out = capsys.readouterr().out
    assert "refused" not in out
    first = app.reader.max_position()
    kinds = {e.type for i in range(25) for e in _history(stubs, generate_dataset.number_of(i, 5))}
    assert {
        "NumberActivated",
        "NumberDisconnected",
        "NumberDataClearanceConfirmed",
        "NumberReleased",
        "NumberSuspended",
        "NumberSimSwapped",
    } <= kinds
    # Running again with the same seed records nothing: every request id was already used.
    assert generate_dataset.main(args) == 0
    assert app.reader.max_position() == first
    # (The same seed gives the same commands: tests/unit/test_dataset_shares.py.)


def _history(stubs, msisdn: str) -> list:
    return [r.event for r in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn))]


def _dump(path: Path) -> dict:
    conn = sqlite3.connect(path)
    try:
        return vt.dump(conn)
    finally:
        conn.close()


def test_projection_process_killed_mid_catch_up_resumes_to_the_same_result(settings, clock, tmp_path) -> None:
    app = open_ledger(settings, clock)
    try:
        for chunk in range(6):
            execute(
                app,
                ProvisionNumbers(numbers=[number(chunk * 5000 + i) for i in range(5000)]),
                request_id=f"p{chunk}",
                actor="t",
            )
        head = app.reader.max_position()
    finally:
        app.close()
        app.vault.store.close()
    views = settings.store.views_path()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "ledger", "project", "--db", f"sqlite:///{settings.store.sqlite_path}"]
    proc = subprocess.Popen([*command, "--once"], env=env, stderr=subprocess.DEVNULL)
    position = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        position = _tracked(views)
        if position > 0:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    killed_at = _tracked(views)
    assert killed_at < head, "the projection finished before it could be killed; make the log longer"
    subprocess.run([*command, "--once"], env=env, check=True, capture_output=True, timeout=120)
    assert _tracked(views) == head
    resumed = _dump(views)
    subprocess.run([*command, "--once", "--rebuild"], env=env, check=True, capture_output=True, timeout=120)
    assert _dump(views) == resumed
    assert len(resumed["rm_numbers"]) == 30_000


def _tracked(views: Path) -> int:
    if not views.exists():
        return 0
    conn = sqlite3.connect(views, timeout=10)
    try:
        return vt.tracked(conn)
    finally:
        conn.close()


def test_bench_quick_writes_one_row_per_figure(tmp_path, monkeypatch) -> None:
    """The quick suite runs end to end and writes rows a regression script can read (figures not judged)."""
    from bench import bench

    # The suite sets its master key in its own environment for the servers it starts; in this process that
    # must end with the test (the tests after it open ledgers whose keys come from elsewhere): the variable
    # is set here so that monkeypatch puts back what was there before, absence included.
    monkeypatch.setenv("LEDGER_MASTER_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--json", str(out)]) == 0
    rows = orjson.loads(out.read_bytes())["rows"]
    names = [r["name"] for r in rows]
    for expected in (
        "SQLite import commands/s",
        "SQLite ActivateSim, 64 callers",
        "SQLite BatchCheck, 1000 per batch",
        "SQLite projection rebuild events/s",
        "SQLite server peak RSS",
    ):
        assert expected in names
    assert any(n.startswith("SQLite GetNumberHistory ~1,000 events p99") for n in names)
    for row in rows:
        assert set(row) >= {"name", "value", "unit", "ceiling", "ratio"}
        if row["target"] == "= 0":  # wrong or refused answers while the read models are rebuilt beside
            assert row["value"] == 0, row
            continue
        assert row["value"] > 0
        assert row["ceiling"] is None or row["ratio"] > 0
    assert sum(1 for row in rows if row["target"] == "= 0") == 2
