"""Every answer reads its view rows by an index, never by scanning a table that grows with the ledger: the
statements the read models send for checks and SIM swap answers, as SQLite plans them (a SIM swap
answer once read ``rm_swap_numbers`` by its unindexed ``number`` column: every call scanned the whole table,
83 calls a second at 100,000 numbers)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.bootstrap import open_ledger, open_projector, row_seal
from ledger.config import Settings, StoreConfig
from projections.db import ViewsDatabase
from projections.queries import ReadModels
from tests.conftest import TEST_MASTER_KEY, FakeClock, number, onboard_app

# The tables whose size is the ledger's (a row per number, tenure or subscriber).
GROWING = ("rm_numbers", "rm_checks", "rm_tenures", "rm_swap_numbers", "rm_sim_swaps")


@pytest.fixture
def traced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQL statements sent on every SQLite connection opened from here on."""
    statements: list[str] = []
    connect = sqlite3.connect

    def tracing(*args, **kwargs):  # type: ignore[no-untyped-def]
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", tracing)
    yield statements


def test_answers_read_view_rows_by_an_index(traced: list[str], tmp_path: Path) -> None:
    settings = Settings(store=StoreConfig.from_url(f"sqlite:///{tmp_path}/ledger.db"), master_key_text=TEST_MASTER_KEY)
    app = open_ledger(settings, FakeClock())
    projector = open_projector(settings, app)
    read_models = ReadModels(ViewsDatabase.for_store(settings.store), row_seal(app), app.reader)
    try:
        for seq in range(1, 4):
            onboard_app(app, number(seq), seq)
        projector.catch_up()
        traced.clear()
        asked = [number(1), number(2), number(9)]  # two known, one unknown
        read_models.check_rows(asked)
        read_models.sim_swap_rows(asked)
        reads = [s for s in traced if s.lstrip().upper().startswith("SELECT") and any(t in s for t in GROWING)]
        assert reads, "no view rows were read"
        plans = sqlite3.connect(str(settings.store.views_path()))
        try:
            for statement in reads:
                plan = " | ".join(str(r[3]) for r in plans.execute(f"EXPLAIN QUERY PLAN {statement}"))
                scans = [t for t in GROWING if f"SCAN {t}" in plan]
                assert not scans, f"{statement!r} scans {scans}: {plan}"
        finally:
            plans.close()
    finally:
        read_models.close()
        projector.close()
        app.close()
        app.vault.store.close()
