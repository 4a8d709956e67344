"""Checks are right at every moment while the read models' generations change under them, on both stores,
through the projector and the answers' composition: a rebuild beside the serving generation, and a view
whose schema version changed (as if an older release had built it) built again beside it. Zero wrong
answers, counted by a thread that checks all along. A rebuild killed half way (a process boundary) is in
tests/e2e/test_read_model_generations.py."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import date
from typing import Any

from ledger.bootstrap import open_projector, row_seal
from ledger.config import Settings
from projections.answers import check_numbers
from projections.db import ViewsDatabase
from projections.errors import ReadModelRebuilding
from projections.queries import ReadModels
from projections.views import NumbersView
from scripts.dataset import identifiers as synthetic
from tests.integration.histories import record_dataset
from tests.integration.test_view_rows import Views

NUMBERS = 150
DATES = (date(2023, 1, 1), date(2024, 6, 15), date(2025, 3, 1), date(2025, 11, 20))


def compared(decisions: list[Any]) -> list[tuple]:
    """What an answer says, as compared across passes (positions left out: they move with the ledger)."""
    return [(d.status, d.clearance, d.outstanding_holders, d.last_disconnected_us) for d in decisions]


class Checker(threading.Thread):
    """Checks the same numbers and dates again and again and counts every answer against the baseline."""

    def __init__(self, read_models: ReadModels, zone: Any, baseline: list[tuple]) -> None:
        super().__init__(daemon=True)
        self.read_models, self.zone, self.baseline = read_models, zone, baseline
        self.numbers = [synthetic.msisdn(i) for i in range(NUMBERS) for _ in DATES]
        self.dates = list(DATES) * NUMBERS
        self.stop = threading.Event()
        self.counts: Counter[str] = Counter()
        self.wrong: list[tuple] = []

    def answers(self) -> list[tuple]:
        return compared(check_numbers(self.read_models, self.numbers, self.dates, self.zone).decisions)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                got = self.answers()
            except ReadModelRebuilding:
                self.counts["REBUILDING"] += 1
                continue
            except Exception as e:  # counted, so the test names it
                self.counts[type(e).__name__] += 1
                continue
            bad = [
                (n, d, g, w) for n, d, g, w in zip(self.numbers, self.dates, got, self.baseline, strict=True) if g != w
            ]
            self.counts["answered"] += 1
            if bad:
                self.counts["wrong passes"] += 1
                self.wrong.extend(bad[:5])

    def answer_more(self, passes: int, timeout: float = 60) -> None:
        """Wait until the checker has answered ``passes`` more times."""
        target = self.counts["answered"] + passes
        deadline = time.monotonic() + timeout
        while self.counts["answered"] < target:
            assert time.monotonic() < deadline and self.is_alive(), dict(self.counts)
            time.sleep(0.01)


def serving(settings: Settings) -> dict[str, list[tuple[int, int]]]:
    """Each view's ready generations and their schema versions (the newest last; an older release's
    generation of a view stays ready beside this release's, for the servers of that release)."""
    views = Views(settings)
    try:
        rows = views.execute("SELECT view, generation, version FROM rm_generations WHERE state='ready'").fetchall()
    finally:
        views.close()
    ready: dict[str, list[tuple[int, int]]] = {}
    for v, g, n in rows:
        ready.setdefault(str(v), []).append((int(g), int(n)))
    return {v: sorted(gens) for v, gens in ready.items()}


def test_no_wrong_answer_while_views_are_rebuilt_or_their_schema_changed(store_app, store_settings: Settings) -> None:
    app = store_app
    record_dataset(app, NUMBERS, 14)
    projector = open_projector(store_settings, app)
    read_models = ReadModels(ViewsDatabase.for_store(store_settings.store), row_seal(app), app.reader)
    try:
        projector.catch_up()
        checker = Checker(read_models, app.policy.zone, [])
        checker.baseline = checker.answers()
        assert len({b[0] for b in checker.baseline}) == 3  # NOT_CHANGED, CHANGED and NO_DATA all occur
        checker.start()
        try:
            checker.answer_more(3)
            # (a) A rebuild beside the serving generation (as `ledger project --rebuild` in another process).
            before = serving(store_settings)
            rebuilder = open_projector(store_settings, app)
            try:
                rebuilder.rebuild()
            finally:
                rebuilder.close()
            after = serving(store_settings)
            assert after["numbers"][-1] > before["numbers"][-1] and after["erasure"][-1] > before["erasure"][-1]
            checker.answer_more(3)

            # (b) The numbers view built by an older release (its schema version one less): a projector of
            # this release (a server started again) builds its own beside it, which then serves.
            projector.close()
            views = Views(store_settings)
            try:
                views.execute("UPDATE rm_generations SET version = version - 1 WHERE view = 'numbers'")
            finally:
                views.close()
            assert {n for _, n in serving(store_settings)["numbers"]} == {NumbersView.version - 1}
            projector = open_projector(store_settings, app)
            projector.catch_up()
            assert serving(store_settings)["numbers"][-1][1] == NumbersView.version
            checker.answer_more(3)
        finally:
            checker.stop.set()
            checker.join(60)
    finally:
        read_models.close()
        projector.close()
    assert checker.wrong == [] and checker.counts["wrong passes"] == 0
    assert set(checker.counts) <= {"answered", "REBUILDING"}, checker.counts
