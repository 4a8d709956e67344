"""View rows edited behind the ledger's back, on both stores, through the projector, the read models and
the answers' composition: a status, a clearance and a SIM row edited and rows deleted are never answered
from (each affected number alone is refused, logged without the number); the audit names exactly the
changed numbers, ``ledger audit-views --repair`` heals them, and the projector that wrote them goes on
applying right; the audit runs beside steady writes. The wire (UNAVAILABLE READ_MODEL_MISMATCH, a batch's
entry, VerifyReadModels) is in tests/e2e/test_view_row_tampering.py."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any
from uuid import UUID

import orjson
import pytest

from ledger.application.commands import ConfirmDataCleared, DisconnectNumber, ProvisionNumbers
from ledger.application.pipeline import execute
from ledger.bootstrap import key_jobs, open_projector, row_seal, start_projections
from ledger.config import Settings
from ledger.projection_worker import audit_views
from projections.answers import check_numbers, sim_swap_answers
from projections.audit import Auditor
from projections.db import ViewsDatabase
from projections.errors import ReadModelMismatch
from projections.queries import ReadModels
from projections.views import us
from tests.conftest import FakeClock, number, onboard_app
from tests.views import serving

SINCE = date(2026, 1, 5)
MISMATCH = "READ_MODEL_MISMATCH"


class Views:
    """A connection to the views database, as someone who can write it (and holds no key) has."""

    def __init__(self, settings: Settings) -> None:
        if settings.store.kind == "sqlite":
            self.conn: Any = sqlite3.connect(settings.store.views_path(), isolation_level=None)
        else:
            import psycopg

            self.conn = psycopg.connect(settings.store.conninfo(), autocommit=True)
            self.conn.execute('SET search_path TO "ledger_views"')
        self.pg = settings.store.kind != "sqlite"

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s") if self.pg else sql, params)

    def close(self) -> None:
        self.conn.close()


def tamper_views(settings: Settings) -> None:
    """Numbers 1-3 disconnected, 4 and 5 held: 1's status and check row made to look continuously held,
    2's pending clearance made to read as cleared, 3's check and SIM rows deleted, 5's SIM row edited."""
    views = Views(settings)
    try:
        cur = serving(views)
        cur.execute(
            "UPDATE rm_checks SET closed='[]', last_disconnected_us=NULL, current_activated_us=1 WHERE number=?",
            (number(1),),
        )
        cur.execute("UPDATE rm_numbers SET status='ACTIVE' WHERE number=?", (number(1),))
        closed = orjson.loads(cur.execute("SELECT closed FROM rm_checks WHERE number=?", (number(2),)).fetchone()[0])
        cleared = orjson.dumps([[end, "CLEARED", []] for end, _, _ in closed]).decode()
        cur.execute("UPDATE rm_checks SET closed=? WHERE number=?", (cleared, number(2)))
        cur.execute(
            "UPDATE rm_tenures SET outstanding_holders='[]' WHERE number_id=(SELECT number_id FROM rm_numbers "
            "WHERE number=?)",
            (number(2),),
        )
        cur.execute("DELETE FROM rm_checks WHERE number=?", (number(3),))
        cur.execute("DELETE FROM rm_swap_numbers WHERE number=?", (number(3),))
        cur.execute("UPDATE rm_swap_numbers SET activated_us=NULL WHERE number=?", (number(5),))
    finally:
        views.close()


class ViewsOf:
    """The projector of an application on one store (caught up by hand) and the read models it feeds."""

    def __init__(self, app, settings: Settings, clock: FakeClock) -> None:
        self.app, self.settings, self.clock = app, settings, clock
        self.projector = open_projector(settings, app)
        self.read_models = ReadModels(ViewsDatabase.for_store(settings.store), row_seal(app), app.reader)

    def catch_up(self) -> None:
        self.projector.catch_up()
        assert self.projector.position >= self.app.reader.max_position()

    def checks(self, numbers: list[str], since: date = SINCE) -> list[Any]:
        return check_numbers(self.read_models, numbers, [since] * len(numbers), self.app.policy.zone).decisions

    def swaps(self, numbers: list[str]) -> list[Any]:
        return sim_swap_answers(self.read_models, numbers, [240] * len(numbers), us(self.clock.now())).answers

    def close(self) -> None:
        self.read_models.close()
        self.projector.close()


@pytest.fixture
def views(store_app, store_settings: Settings, clock: FakeClock) -> Iterator[ViewsOf]:
    of = ViewsOf(store_app, store_settings, clock)
    try:
        yield of
    finally:
        of.close()


def disconnect(app, i: int) -> None:
    execute(app, DisconnectNumber(number=number(i), reason="SUBSCRIBER_REQUEST"), request_id=f"d{i}", actor="t")


def test_edited_and_deleted_view_rows_refuse_their_numbers_and_repair_heals(
    views: ViewsOf, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    app, numbers = views.app, [number(i) for i in range(1, 6)]
    for i in (1, 2, 3):  # disconnected: recycled since the date, clearance pending
        onboard_app(app, number(i), i)
        disconnect(app, i)
    for i in (4, 5):  # held
        onboard_app(app, number(i), i)
    views.catch_up()

    def answers() -> tuple[Any, ...]:
        return (
            views.checks(numbers),
            [views.read_models.numbers([n])[n] for n in numbers],
            views.swaps(numbers),
        )

    before = answers()
    assert [d.status for d in before[0]] == ["CHANGED"] * 3 + ["NOT_CHANGED"] * 2
    assert before[0][1].clearance == "PENDING" and before[0][0].last_disconnected_us
    assert [a.answer for a in before[2]] == ["ANSWERED"] * 5

    tamper_views(views.settings)
    caplog.set_level(logging.ERROR, logger="projections.queries")
    decisions = views.checks([*numbers, number(99)])
    assert [(d.status, d.no_data_reason) for d in decisions[:3]] == [("NO_DATA", MISMATCH)] * 3
    assert decisions[3:5] == before[0][3:5]  # the others answer, in the same read as the refused ones
    assert (decisions[5].status, decisions[5].no_data_reason) == ("NO_DATA", "UNKNOWN_NUMBER")
    for i in (1, 2):  # their clearance
        with pytest.raises(ReadModelMismatch):
            views.read_models.numbers([number(i)])
    assert views.read_models.numbers([number(3)])[number(3)].tenures  # its rows are whole
    assert [a.answer for a in views.swaps(numbers)] == ["ANSWERED"] * 2 + [MISMATCH, "ANSWERED", MISMATCH]
    # Logged, with the table, never the number.
    logged = [r.getMessage() for r in caplog.records if MISMATCH in r.getMessage()]
    assert any("rm_checks" in m and "fails its keyed hash" in m for m in logged)
    assert any("rm_checks" in m and "is missing" in m for m in logged)
    assert any("rm_swap_numbers" in m for m in logged) and any("rm_tenures" in m for m in logged)
    assert not [m for m in logged if any(n in m or n[1:] in m for n in numbers)]

    capsys.readouterr()
    assert audit_views(views.settings, repair=True) == 0
    out = capsys.readouterr().out
    assert "4 differ" in out and "4 repaired" in out, out
    assert audit_views(views.settings) == 0
    assert answers() == before


def test_audit_names_exactly_the_changed_numbers_and_repair_makes_checks_right(views: ViewsOf, capsys) -> None:
    app, settings = views.app, views.settings
    for i in range(6):
        onboard_app(app, number(i), i + 1)
        disconnect(app, i)
    onboard_app(app, number(50), 50)
    views.catch_up()
    capsys.readouterr()
    assert audit_views(settings) == 0
    assert "audited 7 numbers" in capsys.readouterr().out
    (before,) = views.checks([number(1)])
    assert (before.status, before.clearance) == ("CHANGED", "PENDING")

    edits = Views(settings)
    try:
        cur = serving(edits)
        cur.execute("UPDATE rm_numbers SET status='AVAILABLE' WHERE number=?", (number(0),))  # a status
        closed = orjson.loads(cur.execute("SELECT closed FROM rm_checks WHERE number=?", (number(1),)).fetchone()[0])
        cur.execute(  # a clearance: the quarantined number reads as not recycled at all
            "UPDATE rm_checks SET closed='[]', last_disconnected_us=NULL, current_activated_us=1 WHERE number=?",
            (number(1),),
        )
        assert closed
        cur.execute(  # a deleted row
            "DELETE FROM rm_tenures WHERE number_id=(SELECT number_id FROM rm_numbers WHERE number=?)", (number(2),)
        )
    finally:
        edits.close()
    assert views.checks([number(1)])[0].no_data_reason == MISMATCH  # an edited row is never answered from

    auditor = Auditor(app.recorder, app.mapper, ViewsDatabase.for_store(settings.store), row_seal(app))
    try:
        report = auditor.audit()
        assert not report.ok and report.numbers_checked == 7
        assert {m.number for m in report.mismatches} == {number(0), number(1), number(2)}
        assert any(m.field == "rm_numbers.status" and m.stored == "AVAILABLE" for m in report.mismatches)
        assert auditor.audit([number(3)]).ok
    finally:
        auditor.close()

    assert audit_views(settings) == 1
    out = capsys.readouterr().out
    assert {line.split()[1] for line in out.splitlines() if line.startswith("MISMATCH")} == {
        number(0),
        number(1),
        number(2),
    }
    assert audit_views(settings, repair=True) == 0
    assert "3 repaired" in capsys.readouterr().out
    assert audit_views(settings) == 0
    (after,) = views.checks([number(1)])
    assert (after.status, after.clearance) == (before.status, before.clearance)
    # The projector that wrote the rows forgot what it remembered of the repaired ones: confirmations apply.
    (tenure,) = views.read_models.numbers([number(2)])[number(2)].tenures
    for holder in ("crm", "billing", "voicemail"):
        execute(
            app,
            ConfirmDataCleared(number=number(2), tenure_id=UUID(tenure.tenure_id), holder=holder, evidence_ref="e"),
            request_id=f"c-{holder}",
            actor="t",
        )
    views.catch_up()
    assert views.checks([number(2)])[0].clearance == "CLEARED"
    assert audit_views(settings, sample=3) == 0
    assert "audited 3 numbers" in capsys.readouterr().out


def test_audit_runs_beside_steady_writes(store_app, store_settings: Settings) -> None:
    app = store_app
    for i in range(3):
        onboard_app(app, number(i), i + 1)
    projector = open_projector(store_settings, app)
    stop = threading.Event()
    threads = start_projections(store_settings, projector, key_jobs(store_settings, app), stop)
    auditor = Auditor(app.recorder, app.mapper, ViewsDatabase.for_store(store_settings.store), row_seal(app))
    try:
        assert projector.wait_for(app.reader.max_position(), 30)

        def write(i: int) -> None:
            execute(app, ProvisionNumbers(numbers=[number(100 + i)]), request_id=f"w{i}", actor="t")

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(write, i) for i in range(60)]
            for _ in range(5):
                report = auditor.audit()
                assert report.ok, report.mismatches
            for f in futures:
                f.result()
        assert projector.wait_for(app.reader.max_position(), 30)
        assert auditor.audit().ok
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        auditor.close()
        projector.close()
