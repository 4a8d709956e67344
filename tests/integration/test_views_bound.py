"""Views bound to their ledger, on both stores, through the projector, the read models and the answers:
views of a newer ledger beside a restored older one are refused (beyond its head, then mismatched at
their position) until rebuilt; with no generation of this release to serve, checks are refused as being
rebuilt (the view and the head named) until ``ledger project --prepare`` builds one, and ``--prune``
drops the old one. The wire (UNAVAILABLE with the reasons, health NOT_SERVING) is in
tests/e2e/test_read_model_answers.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest

from ledger.application import LedgerApplication
from ledger.application.commands import ProvisionNumbers
from ledger.application.pipeline import execute
from ledger.bootstrap import open_ledger, open_projector, row_seal
from ledger.config import Settings
from ledger.projection_worker import prune, run_projections
from projections.answers import Answers
from projections.db import ViewsDatabase
from projections.errors import ReadModelMismatch, ReadModelRebuilding
from projections.queries import ReadModels
from tests.conftest import FakeClock, number
from tests.e2e.tamper import Store
from tests.integration.test_view_rows import Views

SINCE = date(2026, 1, 1)


class LedgerHead:
    """What an answer stands beside, read from the ledger (the server keeps it in ``Progress``)."""

    def __init__(self, app: LedgerApplication) -> None:
        self.app = app
        self.head = app.reader.max_position()

    def refresh_head(self) -> int:
        self.head = self.app.reader.max_position()
        return self.head

    def lag_seconds(self, as_of: int) -> float:
        return 0.0


@contextmanager
def answering(settings: Settings, clock: FakeClock) -> Iterator[tuple[LedgerApplication, Answers]]:
    """The ledger opened afresh and the answers read from its views."""
    app = open_ledger(settings, clock)
    read_models = ReadModels(ViewsDatabase.for_store(settings.store), row_seal(app), app.reader)
    try:
        yield app, Answers(read_models, app.policy, LedgerHead(app), clock.now)
    finally:
        read_models.close()
        app.close()
        app.vault.store.close()


def provision(app: LedgerApplication, request_id: str, *numbers: str) -> int:
    return execute(app, ProvisionNumbers(numbers=numbers), request_id=request_id, actor="t").position


@pytest.mark.parametrize("grown", [False, True], ids=["restored", "restored-and-grown"])
def test_views_of_a_newer_ledger_beside_a_restored_older_one_are_refused_until_rebuilt(
    store_settings: Settings, clock: FakeClock, grown: bool
) -> None:
    with answering(store_settings, clock) as (app, answers):
        older = provision(app, "p", number(1), number(2))
        position = 0
        for i in range(3):
            position = provision(app, f"q{i}", number(10 + i))
        projector = open_projector(store_settings, app)
        try:
            projector.catch_up()
        finally:
            projector.close()
        assert answers.check_one(number(10), SINCE)[1] == position
    store = Store(store_settings)
    try:
        store.roll_back_to(older)  # a backup restored: the older ledger; the newer views stay
    finally:
        store.close()

    with answering(store_settings, clock) as (app, answers):
        with pytest.raises(ReadModelMismatch):  # views beyond the ledger's head
            answers.check_one(number(1), SINCE)
        projector = open_projector(store_settings, app)
        try:
            if grown:  # the ledger goes on past the views' position with other events first
                for i in range(5):
                    provision(app, f"r{i}", number(20 + i))
            problem = "chain digest at position" if grown else "no event at the views' position"
            with pytest.raises(ReadModelMismatch, match=problem):
                projector.catch_up()  # the projector stops, and marks the views
            with pytest.raises(ReadModelMismatch):
                answers.check_one(number(1), SINCE)
            if not grown:
                for i in range(5):
                    provision(app, f"r{i}", number(20 + i))
            with pytest.raises(ReadModelMismatch):  # still, however the ledger goes on
                projector.catch_up()
            with pytest.raises(ReadModelMismatch):
                answers.check_one(number(20), SINCE)
            projector.rebuild()  # as `ledger project --rebuild`
        finally:
            projector.close()
        today = clock.now().date()
        head, as_of, decision = answers.check_one(number(20), today)
        assert decision.status != "NO_DATA" and as_of == head == app.reader.max_position()
        assert answers.check_one(number(10), today)[2].status == "NO_DATA"  # the lost ledger's


def test_no_generation_to_serve_is_rebuilding_until_prepared_and_prune_drops_the_old(
    store_settings: Settings, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    with answering(store_settings, clock) as (app, _):
        provision(app, "p", number(1))
        projector = open_projector(store_settings, app)
        try:
            projector.catch_up()
        finally:
            projector.close()
    # As if an older release had built the numbers view; nothing here builds this release's yet.
    views = Views(store_settings)
    try:
        views.execute("UPDATE rm_generations SET version = version - 1 WHERE view = 'numbers'")
    finally:
        views.close()
    with answering(store_settings, clock) as (app, answers):
        with pytest.raises(ReadModelRebuilding) as refused:
            answers.check_one(number(1), SINCE)
        assert refused.value.view == "numbers" and refused.value.head == app.reader.max_position()
        assert run_projections(store_settings, once=True, prepare=True) == 0  # `ledger project --prepare`
        assert answers.check_one(number(1), SINCE)[1] == app.reader.max_position()
    capsys.readouterr()
    assert prune(store_settings) == 0  # `ledger project --prune`
    assert "1 generation(s) dropped" in capsys.readouterr().out
    with answering(store_settings, clock) as (app, answers):
        assert answers.check_one(number(1), SINCE)[1] == app.reader.max_position()
