"""The whole-ledger batch check while the server keeps writing: events committed after the check began are
not "events no ledger server wrote" (a false alarm there refuses every write from then on)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ledger.application.commands import SuspendNumber
from ledger.application.pipeline import execute
from ledger.proofs.batches import check_log
from tests.conftest import number, onboard_app


class WritesBetweenPages:
    """The store's own reader, with a command committed after the first event it yields (after the check
    has read the batches, before the reader asks the store for its next page)."""

    def __init__(self, reader: Any, write: Callable[[], None]) -> None:
        self.reader, self.write = reader, write

    def chained(self, after: int = 0, batch: int = 5000) -> Iterator[Any]:
        events = self.reader.chained(after, batch)
        yield next(events)
        self.write()
        yield from events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reader, name)


def test_events_committed_during_the_check_are_not_taken_for_forged_ones(store_app, clock) -> None:
    app = store_app
    msisdn = number(1)
    onboard_app(app, msisdn, 1)
    head = app.reader.max_position()

    def suspend() -> None:
        clock.advance(minutes=1)
        execute(app, SuspendNumber(number=msisdn, reason="NON_PAYMENT", note=""), request_id="late", actor="t")

    reader = WritesBetweenPages(app.reader, suspend)
    assert check_log(app.batch_key, app.batches, reader) == (0, "")
    assert app.reader.max_position() > head  # the write did land during the check
    assert check_log(app.batch_key, app.batches, app.reader) == (0, "")  # and is checked by the next one
