"""A view built in memory (``projections.building``) names every column of every table it fills, in the
schema's own order and with its key, and has a ``build`` handler for every event its ``apply`` handles: a
column or an event forgotten there would make a rebuilt generation differ from the one the live projector
writes."""

from __future__ import annotations

import sqlite3

from projections.building import Keys, Rows, Stored, Table, batch_keys
from projections.views import ALL_VIEWS, View


def _columns(view: type[View]) -> dict[str, list[str]]:
    memory = sqlite3.connect(":memory:")
    try:
        for statement in view.schema:
            memory.execute(statement)
        return {t: [r[1] for r in memory.execute(f"PRAGMA table_info({t})")] for t in view.tables}
    finally:
        memory.close()


def test_every_table_of_a_built_view_is_stored_with_all_its_columns() -> None:
    built = [view for view in ALL_VIEWS if view.stored]
    assert {view.name for view in built} == {view.name for view in ALL_VIEWS}
    for view in built:
        columns = _columns(view)
        assert {spec.table for spec in view.stored} == set(view.tables), view.name
        for spec in view.stored:
            assert list(spec.columns) == columns[spec.table], spec.table
            assert set(spec.key) <= set(spec.columns) and set(spec.defaults) <= set(spec.columns), spec.table
            assert spec.group is None or spec.group in spec.columns, spec.table
        for sealed in view.sealed:
            spec = next(s for s in view.stored if s.table == sealed.table)
            assert set(sealed.columns) < set(spec.columns) and "mac" in spec.columns, sealed.table


def test_every_event_a_view_applies_it_also_builds() -> None:
    for cls in ALL_VIEWS:
        _ = cls().build  # registers the handlers whose annotations name classes defined after them
        method = next(c.__dict__["build"] for c in cls.__mro__ if "build" in c.__dict__)
        nothing = method.dispatcher.dispatch(object)
        for event in cls.event_classes:
            assert method.dispatcher.dispatch(event) is not nothing, f"{cls.name} builds no {event.__qualname__}"


def test_rows_of_a_batch_follow_the_writes_of_its_events() -> None:
    spec = Stored("rm_t", ("k",), ("k", "n", "g"), {"n": 0}, "k = ANY(%(numbers)s)", group="g")
    rows = Rows([spec])
    table: Table = rows["rm_t"]
    table.loaded([("a", 1, "x")])
    assert table.change("missing") is None  # an UPDATE that finds no row
    row = table.change("a")
    assert row is not None
    row["n"] += 1
    table.insert(k="b", g="x")
    assert [r["k"] for r in table.of("x")] == ["a", "b"] and table.changed == {"a"} and set(table.new) == {"b"}
    assert table.change("b") is not None and table.changed == {"a"}  # a new row stays new
    try:
        table.insert(k="a", g="y")
    except ValueError:
        pass
    else:
        raise AssertionError("a second row with an existing key was taken")


def test_the_keys_of_a_batch_are_its_numbers_subscribers_and_tenures() -> None:
    from datetime import UTC, datetime
    from uuid import uuid4

    from ledger.domain.number import Number

    number, tenure, subscriber = uuid4(), uuid4(), uuid4()
    now = datetime.now(UTC)
    event = Number.Activated(
        originator_id=number, originator_version=2, timestamp=now, occurred_at=now, actor="t", request_id="r",
        tenure_id=tenure, subscriber_id=subscriber, iccid="8988", imsi="001", channel="shop", agent_id="a",
    )  # fmt: skip
    assert batch_keys([event]) == Keys([number.hex], [subscriber.hex], [tenure.hex])
