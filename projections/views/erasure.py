"""The erasure view: subscribers whose personal data is due to be erased, and the tenures they held."""

from __future__ import annotations

from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber
from projections.building import Rows, Stored
from projections.db import Cursor
from projections.views.base import View, us


class ErasureView(View):
    """Per subscriber: open tenures, when the last one ended, whether their data was erased, and until when
    a requested erasure is held by the retention period (a held subscriber is not due: the hold's end is)."""

    name = "erasure"
    version = 2
    tables = ("rm_er_subscribers", "rm_er_tenures")
    schema = (
        """CREATE TABLE IF NOT EXISTS rm_er_subscribers (
            subscriber_id TEXT PRIMARY KEY, registered_us BIGINT NOT NULL, open_tenures BIGINT NOT NULL DEFAULT 0,
            tenure_count BIGINT NOT NULL DEFAULT 0, last_end_us BIGINT, erased_us BIGINT, held_until_us BIGINT)""",
        "CREATE TABLE IF NOT EXISTS rm_er_tenures (tenure_id TEXT PRIMARY KEY, subscriber_id TEXT NOT NULL)",
    )
    stored = (
        Stored(
            "rm_er_subscribers",
            ("subscriber_id",),
            ("subscriber_id", "registered_us", "open_tenures", "tenure_count", "last_end_us", "erased_us",
             "held_until_us"),
            {"open_tenures": 0, "tenure_count": 0, "last_end_us": None, "erased_us": None, "held_until_us": None},
            "subscriber_id = ANY(%(subscribers)s::text[] || ARRAY(SELECT subscriber_id FROM rm_er_tenures "
            "WHERE tenure_id = ANY(%(tenures)s::text[])))",
        ),
        Stored(
            "rm_er_tenures",
            ("tenure_id",),
            ("tenure_id", "subscriber_id"),
            {},
            "tenure_id = ANY(%(tenures)s::text[])",
        ),
    )  # fmt: skip
    event_classes = (
        Subscriber.Registered,
        Subscriber.ErasureRequested,
        Subscriber.PersonalDataErased,
        Number.Activated,
        Number.Disconnected,
        Number.PortedOut,
    )

    @singledispatchmethod
    def apply(self, event: Any, position: int, cur: Cursor) -> None:
        """Events this view does not use change nothing."""

    @apply.register
    def _(self, e: Subscriber.Registered, position: int, cur: Cursor) -> None:
        cur.execute(
            "INSERT INTO rm_er_subscribers (subscriber_id, registered_us) VALUES (?, ?)",
            (e.originator_id.hex, us(e.occurred_at)),
        )

    @apply.register
    def _(self, e: Subscriber.ErasureRequested, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_er_subscribers SET held_until_us=? WHERE subscriber_id=?", (us(e.due_at), e.originator_id.hex)
        )

    @apply.register
    def _(self, e: Subscriber.PersonalDataErased, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_er_subscribers SET erased_us=? WHERE subscriber_id=?", (us(e.occurred_at), e.originator_id.hex)
        )

    @apply.register
    def _(self, e: Number.Activated, position: int, cur: Cursor) -> None:
        cur.execute("INSERT INTO rm_er_tenures VALUES (?, ?)", (e.tenure_id.hex, e.subscriber_id.hex))
        cur.execute(
            "UPDATE rm_er_subscribers SET open_tenures=open_tenures+1, tenure_count=tenure_count+1 "
            "WHERE subscriber_id=?",
            (e.subscriber_id.hex,),
        )

    @apply.register
    def _(self, e: Number.Disconnected, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_er_subscribers SET open_tenures=open_tenures-1, last_end_us=? WHERE subscriber_id="
            "(SELECT subscriber_id FROM rm_er_tenures WHERE tenure_id=?)",
            (us(e.occurred_at), e.tenure_id.hex),
        )

    @apply.register
    def _(self, e: Number.PortedOut, position: int, cur: Cursor) -> None:
        # A port ends the subscriber's service here as a disconnection does (PIPL: service ended).
        cur.execute(
            "UPDATE rm_er_subscribers SET open_tenures=open_tenures-1, last_end_us=? WHERE subscriber_id="
            "(SELECT subscriber_id FROM rm_er_tenures WHERE tenure_id=?)",
            (us(e.occurred_at), e.tenure_id.hex),
        )

    # -- a generation being built: the same changes on a batch's rows in memory -----------------------

    @singledispatchmethod
    def build(self, event: Any, position: int, rows: Rows) -> None:
        """Events this view does not use change nothing."""

    @build.register
    def _(self, e: Subscriber.Registered, position: int, rows: Rows) -> None:
        rows["rm_er_subscribers"].insert(subscriber_id=e.originator_id.hex, registered_us=us(e.occurred_at))

    @build.register
    def _(self, e: Subscriber.ErasureRequested, position: int, rows: Rows) -> None:
        subscriber = rows["rm_er_subscribers"].change(e.originator_id.hex)
        if subscriber is not None:
            subscriber["held_until_us"] = us(e.due_at)

    @build.register
    def _(self, e: Subscriber.PersonalDataErased, position: int, rows: Rows) -> None:
        subscriber = rows["rm_er_subscribers"].change(e.originator_id.hex)
        if subscriber is not None:
            subscriber["erased_us"] = us(e.occurred_at)

    @build.register
    def _(self, e: Number.Activated, position: int, rows: Rows) -> None:
        rows["rm_er_tenures"].insert(tenure_id=e.tenure_id.hex, subscriber_id=e.subscriber_id.hex)
        subscriber = rows["rm_er_subscribers"].change(e.subscriber_id.hex)
        if subscriber is not None:
            subscriber["open_tenures"] += 1
            subscriber["tenure_count"] += 1

    @build.register
    def _(self, e: Number.Disconnected, position: int, rows: Rows) -> None:
        self._ended(rows, e.tenure_id.hex, us(e.occurred_at))

    @build.register
    def _(self, e: Number.PortedOut, position: int, rows: Rows) -> None:
        self._ended(rows, e.tenure_id.hex, us(e.occurred_at))

    @staticmethod
    def _ended(rows: Rows, tenure_id: str, at: int) -> None:
        tenure = rows["rm_er_tenures"].get(tenure_id)
        subscriber = rows["rm_er_subscribers"].change(tenure["subscriber_id"]) if tenure is not None else None
        if subscriber is not None:
            subscriber["open_tenures"] -= 1
            subscriber["last_end_us"] = at
