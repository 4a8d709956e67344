"""A stored event that does not decode (issue 23, finding 4), on both stores: every read, command, check,
feed and export that depends on it raises EventUndecodable naming its position, never an answer guessed
from the other events; the projector passes it (it neither stops nor guesses), also in a rebuild; numbers
that do not depend on it answer as before. The wire (DATA_LOSS, EVENT_UNDECODABLE) is in
tests/e2e/test_undecodable.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.application.commands import SuspendNumber
from ledger.application.feed import Feed
from ledger.application.pipeline import execute
from ledger.application.reads import number_history, number_state
from ledger.application.verification import verify_integrity
from ledger.bootstrap import open_ledger, open_projector, row_seal
from ledger.config import Settings
from ledger.domain.errors import EventUndecodable
from ledger.domain.number import Number
from projections.answers import check_numbers
from projections.db import ViewsDatabase
from projections.queries import ReadModels
from scripts import export_history
from tests.conftest import FakeClock, number, onboard_app
from tests.e2e.tamper import garble
from tests.integration.test_offline_tools import url_of

DAMAGED, HEALTHY, UNNAMED = number(1), number(2), number(3)
LONG_AGO = date(2020, 1, 1)


class Garbled:
    """The ledger after the damage: the application, the projector caught up, the read models, and the
    positions of the two garbled events."""

    def __init__(self, settings: Settings, clock: FakeClock, position: int, unnamed: int, head: int) -> None:
        self.settings, self.clock = settings, clock
        self.position, self.unnamed, self.head = position, unnamed, head
        self.app = open_ledger(settings, clock)
        self.projector = open_projector(settings, self.app)
        self.projector.catch_up()
        assert self.projector.position >= head
        self.read_models = ReadModels(ViewsDatabase.for_store(settings.store), row_seal(self.app), self.app.reader)

    def check(self, *numbers: str, since: date = LONG_AGO) -> list[Any]:
        return check_numbers(self.read_models, numbers, [since] * len(numbers), self.app.policy.zone).decisions

    def close(self) -> None:
        self.read_models.close()
        self.projector.close()
        self.app.close()
        self.app.vault.store.close()


@pytest.fixture
def garbled(store_settings: Settings, clock: FakeClock) -> Iterator[Garbled]:
    """Two numbers held by two subscribers; the Activated event of the first garbled (not JSON) before any
    application or projector read it, and the first event of a third number (so the views never learn
    its name)."""
    app = open_ledger(store_settings, clock)
    try:
        onboard_app(app, DAMAGED, 1)
        onboard_app(app, HEALTHY, 2)
        onboard_app(app, UNNAMED, 3)
    finally:
        app.close()
        app.vault.store.close()
    position, unnamed, head = garble(store_settings, Number.create_id(DAMAGED), Number.create_id(UNNAMED))
    ledger = Garbled(store_settings, clock, position, unnamed, head)
    try:
        yield ledger
    finally:
        ledger.close()


def undecodable(call, position: int) -> None:
    """``call()`` raises EventUndecodable naming ``position``."""
    with pytest.raises(EventUndecodable) as raised:
        call()
    assert raised.value.position == position and raised.value.reason == "EVENT_UNDECODABLE"


def test_history_state_checks_and_commands_of_the_number_are_refused(garbled: Garbled) -> None:
    g, position = garbled, garbled.position
    undecodable(lambda: number_history(g.app, DAMAGED, False), position)
    undecodable(lambda: number_state(g.app, DAMAGED, None), position)
    undecodable(
        lambda: execute(g.app, SuspendNumber(number=DAMAGED, reason="SPAM", note=""), request_id="s1", actor="t"),
        position,
    )
    # The projector passed the garbled event: the number's check rows refuse, alone and in a batch.
    undecodable(lambda: g.check(DAMAGED), position)
    undecodable(lambda: g.check(HEALTHY, DAMAGED), position)
    undecodable(lambda: g.read_models.numbers([DAMAGED]), position)  # its clearance
    undecodable(lambda: g.read_models.sim_swap_rows([DAMAGED]), position)
    # A number whose first event does not decode is not unknown (NO_DATA): its records are damaged.
    undecodable(lambda: g.check(UNNAMED), g.unnamed)
    undecodable(lambda: number_state(g.app, UNNAMED, None), g.unnamed)
    # The follower of the log meets it too, after the events before it.
    feed = Feed(g.app)
    last, items = feed.batch(0, limit=position - 1)
    assert last == position - 1 and items
    undecodable(lambda: feed.batch(last), position)
    # Verification reports it.
    report = verify_integrity(g.app, DAMAGED)
    assert not report.ok and report.first_bad_position == position


def test_other_numbers_answer_normally(garbled: Garbled) -> None:
    g = garbled
    events = number_history(g.app, HEALTHY, False)
    assert [type(e.event).__qualname__ for e in events][:2] == ["Number.Provisioned", "Subscriber.Registered"]
    assert number_state(g.app, HEALTHY, None).number == HEALTHY
    today = g.clock.now().date()
    assert [d.status for d in g.check(HEALTHY, since=today)] == ["NOT_CHANGED"]
    assert g.read_models.numbers([HEALTHY])[HEALTHY].tenures
    position, rows = g.read_models.sim_swap_rows([HEALTHY])
    assert position >= g.head and HEALTHY in rows
    execute(g.app, SuspendNumber(number=HEALTHY, reason="SPAM", note=""), request_id="s2", actor="t")


def test_the_export_of_the_number_is_refused_naming_the_position(garbled: Garbled, tmp_path: Path, capsys) -> None:
    db = url_of(garbled.settings.store)
    out = tmp_path / "export.jsonl"
    capsys.readouterr()
    assert export_history.main(["--db", db, "--number", DAMAGED, "-o", str(out)]) == 1
    assert f"position {garbled.position} does not decode" in capsys.readouterr().err
    assert not out.exists() and not export_history.partial_name(out).exists()
    assert export_history.main(["--db", db, "--number", HEALTHY, "-o", str(out)]) == 0


def test_a_rebuild_of_the_views_meets_it_again(garbled: Garbled) -> None:
    g = garbled
    rebuilder = open_projector(g.settings, g.app)  # as `ledger project --rebuild` in another process
    try:
        rebuilder.rebuild()  # from position 0 beside the serving generation, then switched to
    finally:
        rebuilder.close()
    undecodable(lambda: g.check(DAMAGED), g.position)
    assert [d.status for d in g.check(HEALTHY, since=g.clock.now().date())] == ["NOT_CHANGED"]
    position, rows = g.read_models.sim_swap_rows([HEALTHY])
    assert position >= g.head and HEALTHY in rows


def test_projectors_taking_turns_pass_the_event_another_one_met(store_settings: Settings, clock: FakeClock) -> None:
    """Two projectors on the same views (two server processes): the one that applied the batches before the
    undecodable event and the one after it still applies nothing of its stream past it, though the other
    projector met it (each projector remembers the damaged streams between its own batches)."""
    app = open_ledger(store_settings, clock)
    try:
        onboard_app(app, DAMAGED, 1)
        onboard_app(app, HEALTHY, 2)
        onboard_app(app, UNNAMED, 3)
        execute(app, SuspendNumber(number=DAMAGED, reason="FRAUD", note=""), request_id="s1", actor="t")
    finally:
        app.close()
        app.vault.store.close()
    position, _, head = garble(store_settings, Number.create_id(DAMAGED), Number.create_id(UNNAMED))
    app = open_ledger(store_settings, clock)
    first, second = open_projector(store_settings, app), open_projector(store_settings, app)
    try:
        first.batch_size = position - 1
        assert first.run_once() == position - 1  # everything before the damaged event
        second.batch_size = 1
        assert second.run_once() == 1  # the damaged event: recorded in rm_damaged
        first.batch_size = 2000
        first.catch_up()  # the suspension of the damaged number, after its undecodable activation
        assert first.position >= head
        row = first.conn.execute("SELECT last_position FROM rm_numbers WHERE number = ?", (DAMAGED,)).fetchone()
        assert row is not None and int(row[0]) < position  # nothing of its stream applied past the damage
        undecodable(
            lambda: check_numbers(
                ReadModels(ViewsDatabase.for_store(store_settings.store), row_seal(app), app.reader),
                [DAMAGED],
                [LONG_AGO],
                app.policy.zone,
            ),
            position,
        )
    finally:
        first.close()
        second.close()
        app.close()
        app.vault.store.close()
