"""The audit's views and rows come from the views' registry: every table that names a number is declared
by its view, so a view (or a table) added later is audited without an edit to the audit."""

from __future__ import annotations

import sqlite3
from typing import ClassVar

from projections import audit
from projections.views import ALL_VIEWS, View
from projections.views.base import NumberRows

NUMBER_COLUMNS = {"number", "number_id"}


def _columns(view: type[View]) -> dict[str, set[str]]:
    memory = sqlite3.connect(":memory:")
    try:
        for statement in view.schema:
            memory.execute(statement)
        return {t: {r[1] for r in memory.execute(f"PRAGMA table_info({t})")} for t in view.tables}
    finally:
        memory.close()


def test_every_table_that_names_a_number_is_declared_and_audited() -> None:
    for view in ALL_VIEWS:
        declared = {rows.table: rows for rows in view.by_number}
        for table, columns in _columns(view).items():
            if columns & NUMBER_COLUMNS:
                assert table in declared, f"{view.name}.{table} names a number: declare it in by_number"
        for rows in view.by_number:
            assert rows.table in view.tables and {rows.column, rows.key} <= _columns(view)[rows.table]
    assert {(v.name, r.table) for v, r in audit.number_rows()} == {
        (v.name, r.table) for v in ALL_VIEWS for r in v.by_number
    }
    assert {v.name for v in audit.audited_views()} == {v.name for v in ALL_VIEWS if v.by_number}


def test_a_view_added_to_the_registry_is_audited() -> None:
    class Devices(View):
        name = "devices"
        tables = ("rm_devices",)
        schema = ("CREATE TABLE IF NOT EXISTS rm_devices (number TEXT PRIMARY KEY, imei TEXT)",)
        by_number: ClassVar[tuple[NumberRows, ...]] = (NumberRows("rm_devices", "number", "text", "number"),)

    registry = (*ALL_VIEWS, Devices)
    assert Devices in audit.audited_views(registry)
    assert ("rm_devices", "number", "text", "number") in [tuple(r) for _, r in audit.number_rows(registry)]
