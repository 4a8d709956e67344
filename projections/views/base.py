"""The read models' base: a view has a name, a schema version, a schema and a dispatching ``apply``.

Handlers receive one decoded event, its position and an open cursor of the batch transaction; they
write rows only. The projector writes tracking in the same transaction (see ``projections.projector``).
Times are stored as integer microseconds since the epoch (UTC), so they compare as numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, NamedTuple

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.utils import get_topic

from projections.building import Rows, Stored
from projections.db import Cursor
from projections.seal import Sealed


def us(moment: datetime) -> int:
    """A datetime as integer microseconds since the epoch."""
    return int(moment.timestamp() * 1_000_000)


def from_us(value: int | None) -> datetime | None:
    """Integer microseconds since the epoch as an aware datetime."""
    return None if value is None else datetime.fromtimestamp(value / 1_000_000, UTC)


class NumberRows(NamedTuple):
    """A table of a view whose rows belong to a number: the column naming it (``number_id``, by ``id``, or
    ``number``, by ``text``) and the row's own key. The audit compares, and repairs, exactly these rows."""

    table: str
    column: str
    kind: Literal["id", "text"]
    key: str


class View:
    """Base of the read models: a name, a schema version, a schema, and a dispatching ``apply``.

    Raise ``version`` whenever ``schema`` or what the handlers write changes: the projector then drops
    the view's tables and rebuilds it from position 0 when it starts."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    schema: ClassVar[tuple[str, ...]]
    tables: ClassVar[tuple[str, ...]]
    event_classes: ClassVar[tuple[type, ...]]
    # Tables whose rows answers are read from: each row carries a keyed hash (see ``projections.seal``).
    sealed: ClassVar[tuple[Sealed, ...]] = ()
    # Tables whose rows belong to a number: every one is audited against the log (``projections.audit``); a
    # table with a ``number`` or ``number_id`` column must be named here (a unit test holds it to that).
    by_number: ClassVar[tuple[NumberRows, ...]] = ()
    # Its tables as a generation being built on PostgreSQL fills them in memory, one batch at a time, with
    # the ``build`` handlers (see ``projections.building``); a view without them is built with ``apply``.
    stored: ClassVar[tuple[Stored, ...]] = ()

    @classmethod
    def topics(cls) -> set[str]:
        """Topics of the events this view reads; others are skipped without decoding."""
        return {get_topic(c) for c in cls.event_classes}

    @singledispatchmethod
    def apply(self, event: Any, position: int, cur: Cursor) -> None:
        """Events this view does not use change nothing."""

    @singledispatchmethod
    def build(self, event: Any, position: int, rows: Rows) -> None:
        """What ``apply`` writes, on a batch's rows in memory (only for a view that names its ``stored``
        tables). Events this view does not use change nothing."""

    def forget(self) -> None:
        """Drop whatever the view remembers of its rows: another projector may have changed them, or the
        batch that changed what it remembers was rolled back."""

    def start_empty(self) -> None:
        """The view's tables are empty (nothing applied yet): what it remembers is the whole truth."""
