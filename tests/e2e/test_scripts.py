"""Batch scripts against a real server: recycling_check, release_due_numbers, generate_dataset,
rebuild_projections, compliance_report; and a projection process killed mid-catch-up."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson

from ledger.application.commands import ProvisionNumbers
from ledger.application.pipeline import execute
from ledger.bootstrap import open_ledger, open_projector, row_seal
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from projections.db import ViewsDatabase
from projections.queries import ReadModels
from projections.views.numbers import NumbersView
from scripts import (
    compliance_report,
    generate_dataset,
    rebuild_projections,
    recycling_check,
    release_due_numbers,
)
from scripts.dataset import identifiers as synthetic
from tests import views as vt
from tests.conftest import number
from tests.e2e.test_recycling_grpc import History, at

ROOT = Path(__file__).resolve().parents[2]


def test_recycling_check_csv_with_malformed_rows(server, tmp_path, capsys) -> None:
    stubs, _ = server
    stubs.onboard(number(1), seq=1)
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p2", numbers=[number(2)]))
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
    # The same seed gives the same commands.
    start = datetime(2023, 1, 2, tzinfo=UTC)
    end = start + timedelta(days=1000)
    a = [(c.at, c.rpc, c.fields) for c in generate_dataset.number_history(3, 5, start, end, 90)]
    b = [(c.at, c.rpc, c.fields) for c in generate_dataset.number_history(3, 5, start, end, 90)]
    assert a == b and a


def _history(stubs, msisdn: str) -> list:
    return [r.event for r in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn))]


def test_rebuild_and_report(server, settings, tmp_path, capsys) -> None:
    stubs, app = server
    generate_dataset.main(
        ["--target", stubs.target, "--numbers", "20", "--seed", "2", "--end", "2026-01-01", "--no-progress"]
    )
    assert stubs.projector.wait_for(app.reader.max_position(), 20)
    db = f"sqlite:///{settings.store.sqlite_path}"
    before = _dump(settings.store.views_path())
    assert rebuild_projections.main(["--db", db]) == 0
    out = capsys.readouterr().out
    # Beside a running server the rebuild does all its own work and says so (it once counted one batch).
    assert f"this process applied {app.reader.max_position()} events" in out and "events/s" in out
    assert "view numbers: generation 1 serves" in out
    assert _dump(settings.store.views_path()) == before
    report = tmp_path / "report.html"
    assert compliance_report.main(["--db", db, "-o", str(report)]) == 0
    text = report.read_text()
    assert "<svg" in text and "retail_store" in text and "due for release" in text


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


def test_open_projector_catch_up_counts(settings, clock) -> None:
    app = open_ledger(settings, clock)
    try:
        execute(app, ProvisionNumbers(numbers=[number(i) for i in range(10)]), request_id="p", actor="t")
        projector = open_projector(settings, app)
        assert projector.catch_up() == app.reader.max_position()
        assert projector.run_once() == 0
        projector.close()
    finally:
        app.close()
        app.vault.store.close()


def test_bench_quick_writes_one_row_per_figure(tmp_path) -> None:
    """The quick suite runs end to end and writes rows a regression script can read (figures not judged)."""
    from bench import bench

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


def _reference_status(tenures: list, provisioned_us: int, since: date) -> tuple[str, str, list[str], int | None]:
    """CAMARA semantics read straight off the tenure rows, written independently of ``projections.queries``."""
    start = datetime.combine(since, datetime.min.time(), tzinfo=UTC)
    closed = [t for t in tenures if t.disconnected_us is not None and t.disconnected_us >= start.timestamp() * 1e6]
    if datetime.fromtimestamp(provisioned_us / 1e6, UTC).date() > since and not closed:
        return "NO_DATA", "NOT_APPLICABLE", [], None  # (a disconnection on record after the date is a change)
    current = tenures[-1] if tenures and tenures[-1].disconnected_us is None else None
    held = current is not None and datetime.fromtimestamp(current.activated_us / 1e6, UTC).date() <= since
    status = "NOT_CHANGED" if held and not closed else "CHANGED"
    order = ["NOT_APPLICABLE", "CLEARED", "PENDING", "VIOLATION"]
    worst = max((t.clearance.value for t in closed), key=order.index, default="NOT_APPLICABLE")
    outstanding: list[str] = []
    for t in closed:
        outstanding += [h for h in t.outstanding_holders if h not in outstanding]
    ends = [t.disconnected_us for t in tenures if t.disconnected_us is not None]
    return status, worst, outstanding, max(ends, default=None)


def test_batch_check_answers_match_the_tenures_on_every_date(server, settings) -> None:
    """The check summary kept on each number row and the encoded BatchCheck answers agree, number by
    number and date by date, with CAMARA semantics applied to the full tenure rows."""
    stubs, app = server
    generate_dataset.main(
        ["--target", stubs.target, "--numbers", "40", "--seed", "5", "--end", "2026-01-01", "--no-progress"]
    )
    assert stubs.projector.wait_for(app.reader.max_position(), 20)
    read_models = ReadModels(ViewsDatabase.for_store(settings.store), row_seal(app), app.reader)
    # The reference below knows no porting (tests/e2e/test_porting_grpc.py checks that): numbers whose
    # history ports are left out, and so are those ported in (not provisioned in this range: unknown here).
    end = datetime(2026, 1, 1, tzinfo=UTC)
    ported = {"PortOutNumber", "PortInNumber"}
    numbers = [
        synthetic.msisdn(i)
        for i in range(40)
        if not ported & {c.rpc for c in generate_dataset.number_history(i, 5, end - timedelta(days=3 * 365), end, 90)}
    ]
    numbers.append(number(999_999))
    rows = read_models.numbers(numbers)
    _, check_rows = read_models.check_rows(numbers)
    assert [None if n not in rows else rows[n].check_row() for n in numbers] == [
        None if r is None else tuple(r)[:6] for r in check_rows
    ]
    # Every 9th day up to the ledger's today (its clock reads 2026-01-05): later dates are refused.
    dates = [date(2022, 12, 1) + timedelta(days=9 * k) for k in range(126)]
    queries = [ledger_pb2.CheckQuery(number=n, since_date=d.isoformat()) for n in numbers for d in dates]
    results = [
        r
        for response in stubs.recycling.BatchCheck(iter([rpb.BatchCheckRequest(queries=queries)]))
        for r in response.results
    ]
    assert len(results) == len(queries)
    statuses = set()
    for query, result in zip(queries, results, strict=True):
        row = rows.get(query.number)
        since = date.fromisoformat(query.since_date)
        if row is None:
            expected = ("NO_DATA", "NOT_APPLICABLE", [], None)
        else:
            expected = _reference_status(row.tenures, row.provisioned_us, since)
        last = result.last_disconnected_at.ToMicroseconds() if result.HasField("last_disconnected_at") else None
        got = (
            ledger_pb2.CheckStatus.Name(result.status).removeprefix("CHECK_STATUS_"),
            ledger_pb2.Clearance.Name(result.clearance).removeprefix("CLEARANCE_"),
            list(result.outstanding_holders),
            last,
        )
        assert got == expected, (query, row)
        assert result.phone_number_changed == (got[0] == "CHANGED") and result.number == query.number
        statuses.add((got[0], got[1]))
    assert {("NO_DATA", "NOT_APPLICABLE"), ("NOT_CHANGED", "NOT_APPLICABLE"), ("CHANGED", "PENDING")} <= statuses
    assert {("CHANGED", "CLEARED"), ("CHANGED", "NOT_APPLICABLE")} <= statuses


def test_views_built_with_an_older_schema_are_rebuilt_on_start(server, settings, caplog) -> None:
    stubs, app = server
    generate_dataset.main(
        ["--target", stubs.target, "--numbers", "10", "--seed", "3", "--end", "2026-01-01", "--no-progress"]
    )
    assert stubs.projector.wait_for(app.reader.max_position(), 20)
    views = settings.store.views_path()
    before = _dump(views)
    # As a views database from before the check rows (and before generations): positions in rm_tracking,
    # no versions kept, no rm_checks.
    _as_a_release_before_generations(views, versions=False)
    sqlite3.connect(views).execute("DROP TABLE rm_checks").connection.close()
    projector = open_projector(settings, app)
    try:
        assert f"view numbers was built with schema version 1, this release has {NumbersView.version}" in caplog.text
        projector.catch_up()
    finally:
        projector.close()
    assert _dump(views) == before


def test_views_of_a_release_before_generations_serve_without_a_rebuild(server, settings, caplog) -> None:
    stubs, app = server
    generate_dataset.main(
        ["--target", stubs.target, "--numbers", "10", "--seed", "3", "--end", "2026-01-01", "--no-progress"]
    )
    assert stubs.projector.wait_for(app.reader.max_position(), 20)
    views = settings.store.views_path()
    before = _dump(views)
    _as_a_release_before_generations(views, versions=True)
    projector = open_projector(settings, app)
    try:
        assert projector.catch_up() == 0  # nothing rebuilt: the old tables are generation 0
        assert {g.generation for g in projector.targets.values()} == {0}
    finally:
        projector.close()
    assert _dump(views) == before
    assert "schema version" not in caplog.text


def _as_a_release_before_generations(views: Path, versions: bool) -> None:
    """Turn a views database into what a release before generations left: rm_tracking (and rm_versions)."""
    conn = sqlite3.connect(views, timeout=30, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    rows = conn.execute("SELECT view, position, version FROM rm_generations WHERE state = 'ready'").fetchall()
    conn.execute("CREATE TABLE rm_tracking (view TEXT PRIMARY KEY, position BIGINT NOT NULL)")
    conn.executemany("INSERT INTO rm_tracking VALUES (?, ?)", [(v, p) for v, p, _ in rows])
    if versions:
        conn.execute("CREATE TABLE rm_versions (view TEXT PRIMARY KEY, version BIGINT NOT NULL)")
        conn.executemany("INSERT INTO rm_versions VALUES (?, ?)", [(v, n) for v, _, n in rows])
    conn.execute("DROP TABLE rm_generations")
    conn.execute("COMMIT")
    conn.close()


def test_profile_summary_counts_busy_stacks_only(tmp_path) -> None:
    from bench.profile import top_frames

    raw = tmp_path / "p.txt"
    raw.write_text(
        "_bootstrap (threading.py:1);Thread.run (threading.py:9);execute (ledger/server/x.py:5);"
        "decide (projections/queries.py:120) 6\n"
        "_bootstrap (threading.py:1);Thread.run (threading.py:9);execute (ledger/server/x.py:7) 2\n"
        "_bootstrap (threading.py:1);_worker (concurrent/futures/thread.py:3);Condition.wait (threading.py:320) 50\n"
    )
    assert top_frames(raw, 5) == [(100.0, "execute (x.py)"), (75.0, "decide (queries.py)")]
