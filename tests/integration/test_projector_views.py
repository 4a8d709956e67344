"""The projector and the read models over a synthetic operator history (``scripts.generate_dataset``'s,
recorded through the application), on both stores: a catch-up counts what it applied; a rebuild beside a
running projector does all its own work and gives the same views; the compliance report reads them; views
of an older schema are rebuilt on start and views of a release before generations serve as they are; and
the recycling answers agree with CAMARA semantics read straight off the tenure rows, number by number and
date by date (their bytes on the wire: tests/unit/test_check_encoding.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.application.commands import ProvisionNumbers
from ledger.application.pipeline import execute
from ledger.bootstrap import key_jobs, open_projector, row_seal, start_projections
from ledger.config import Settings
from projections.answers import check_numbers
from projections.db import ViewsDatabase
from projections.queries import ReadModels
from projections.views.numbers import NumbersView
from scripts import compliance_report, generate_dataset, rebuild_projections
from scripts.dataset import identifiers as synthetic
from tests import views as vt
from tests.conftest import TEST_MASTER_KEY, number
from tests.integration.histories import END, record_dataset
from tests.integration.test_offline_tools import url_of
from tests.integration.test_view_rows import Views


def dump(settings: Settings) -> dict[str, list[str]]:
    """Every serving table's rows."""
    views = Views(settings)
    try:
        return vt.dump(views.conn)
    finally:
        views.close()


@pytest.fixture
def dataset(store_app) -> Any:
    """The application holding a small synthetic history (seed 3, ten numbers)."""
    record_dataset(store_app, 10, 3)
    return store_app


def caught_up(settings: Settings, app: Any) -> None:
    projector = open_projector(settings, app)
    try:
        assert projector.catch_up() == app.reader.max_position()
    finally:
        projector.close()


def test_open_projector_catch_up_counts(store_app, store_settings: Settings) -> None:
    app = store_app
    execute(app, ProvisionNumbers(numbers=tuple(number(i) for i in range(10))), request_id="p", actor="t")
    projector = open_projector(store_settings, app)
    try:
        assert projector.catch_up() == app.reader.max_position()
        assert projector.run_once() == 0
    finally:
        projector.close()


def test_a_rebuild_beside_a_running_projector_and_the_report(
    store_app, store_settings: Settings, tmp_path: Path, capsys, monkeypatch
) -> None:
    app = store_app
    if store_settings.store.kind == "postgres":
        monkeypatch.setenv("LEDGER_MASTER_KEY", TEST_MASTER_KEY)
    record_dataset(app, 20, 2)
    projector = open_projector(store_settings, app)
    stop = threading.Event()
    threads = start_projections(store_settings, projector, key_jobs(store_settings, app), stop)
    try:
        assert projector.wait_for(app.reader.max_position(), 30)
        before = dump(store_settings)
        db = url_of(store_settings.store)
        capsys.readouterr()
        assert rebuild_projections.main(["--db", db]) == 0
        out = capsys.readouterr().out
        # Beside a running projector the rebuild does all its own work and says so (it once counted one batch).
        assert f"this process applied {app.reader.max_position()} events" in out and "events/s" in out
        assert "view numbers: generation 1 serves" in out
        assert projector.wait_for(app.reader.max_position(), 30)
        assert dump(store_settings) == before
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        projector.close()
    report = tmp_path / "report.html"
    assert compliance_report.main(["--db", db, "-o", str(report)]) == 0
    text = report.read_text()
    assert "<svg" in text and "retail_store" in text and "due for release" in text


def as_a_release_before_generations(settings: Settings, versions: bool) -> None:
    """Turn the views into what a release before generations left: rm_tracking (and rm_versions)."""
    views = Views(settings)
    try:
        views.execute("BEGIN")
        rows = views.execute("SELECT view, position, version FROM rm_generations WHERE state = 'ready'").fetchall()
        views.execute("CREATE TABLE rm_tracking (view TEXT PRIMARY KEY, position BIGINT NOT NULL)")
        for v, p, _ in rows:
            views.execute("INSERT INTO rm_tracking VALUES (?, ?)", (v, p))
        if versions:
            views.execute("CREATE TABLE rm_versions (view TEXT PRIMARY KEY, version BIGINT NOT NULL)")
            for v, _, n in rows:
                views.execute("INSERT INTO rm_versions VALUES (?, ?)", (v, n))
        views.execute("DROP TABLE rm_generations")
        views.execute("COMMIT")
    finally:
        views.close()


def test_views_built_with_an_older_schema_are_rebuilt_on_start(dataset, store_settings: Settings, caplog) -> None:
    caught_up(store_settings, dataset)
    before = dump(store_settings)
    # As a views database from before the check rows (and before generations): positions in rm_tracking,
    # no versions kept, no rm_checks.
    as_a_release_before_generations(store_settings, versions=False)
    views = Views(store_settings)
    try:
        views.execute("DROP TABLE rm_checks")
    finally:
        views.close()
    projector = open_projector(store_settings, dataset)
    try:
        assert f"view numbers was built with schema version 1, this release has {NumbersView.version}" in caplog.text
        projector.catch_up()
    finally:
        projector.close()
    assert dump(store_settings) == before


def test_views_of_a_release_before_generations_serve_without_a_rebuild(
    dataset, store_settings: Settings, caplog
) -> None:
    caught_up(store_settings, dataset)
    before = dump(store_settings)
    as_a_release_before_generations(store_settings, versions=True)
    projector = open_projector(store_settings, dataset)
    try:
        assert projector.catch_up() == 0  # nothing rebuilt: the old tables are generation 0
        assert {g.generation for g in projector.targets.values()} == {0}
    finally:
        projector.close()
    assert dump(store_settings) == before
    assert "schema version" not in caplog.text


def reference_status(tenures: list, provisioned_us: int, since: date) -> tuple[str, str, list[str], int | None]:
    """CAMARA semantics read straight off the tenure rows, written independently of ``projections``."""
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


@pytest.fixture
def read_models(store_app, store_settings: Settings) -> Iterator[ReadModels]:
    models = ReadModels(ViewsDatabase.for_store(store_settings.store), row_seal(store_app), store_app.reader)
    try:
        yield models
    finally:
        models.close()


def test_check_answers_match_the_tenures_on_every_date(store_app, store_settings: Settings, read_models) -> None:
    """The check summary kept on each number row and the checks' decisions agree, number by number and
    date by date, with CAMARA semantics applied to the full tenure rows."""
    app = store_app
    record_dataset(app, 40, 5)
    caught_up(store_settings, app)
    # The reference knows no porting (tests/e2e/test_porting_grpc.py checks that): numbers whose history
    # ports are left out, and so are those ported in (not provisioned in this range: unknown here).
    ported = {"PortOutNumber", "PortInNumber"}
    numbers = [
        synthetic.msisdn(i)
        for i in range(40)
        if not ported & {c.rpc for c in generate_dataset.number_history(i, 5, END - timedelta(days=3 * 365), END, 90)}
    ]
    numbers.append(number(999_999))
    rows = read_models.numbers(numbers)
    _, check_rows = read_models.check_rows(numbers)
    assert [None if n not in rows else rows[n].check_row() for n in numbers] == [
        None if r is None else tuple(r)[:6] for r in check_rows
    ]
    # Every 9th day up to the ledger's today (its clock reads 2026-01-05).
    dates = [date(2022, 12, 1) + timedelta(days=9 * k) for k in range(126)]
    queries = [(n, d) for n in numbers for d in dates]
    decisions = check_numbers(read_models, [n for n, _ in queries], [d for _, d in queries], app.policy.zone).decisions
    assert len(decisions) == len(queries)
    statuses = set()
    for (msisdn, since), decision in zip(queries, decisions, strict=True):
        row = rows.get(msisdn)
        if row is None:
            expected = ("NO_DATA", "NOT_APPLICABLE", [], None)
        else:
            expected = reference_status(row.tenures, row.provisioned_us, since)
        holders, last = list(decision.outstanding_holders), decision.last_disconnected_us
        got = (decision.status, str(decision.clearance), holders, last)
        assert got == expected, (msisdn, since, row)
        statuses.add((got[0], got[1]))
    assert {("NO_DATA", "NOT_APPLICABLE"), ("NOT_CHANGED", "NOT_APPLICABLE"), ("CHANGED", "PENDING")} <= statuses
    assert {("CHANGED", "CLEARED"), ("CHANGED", "NOT_APPLICABLE")} <= statuses
