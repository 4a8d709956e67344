"""The real-name compliance view: active numbers without a verified identity, violations by channel and agent."""

from __future__ import annotations

from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from ledger.domain.number import Number
from ledger.domain.rules import VIOLATION_DISCONNECTIONS, VIOLATION_SUSPENSIONS, SuspensionReason
from ledger.domain.subscriber import Subscriber
from projections.building import Rows, Stored
from projections.db import Cursor
from projections.views.base import NumberRows, View, us


class ComplianceView(View):
    """Real-name compliance: numbers in service without a verified holder; verifications, activations
    and violations (tenures later cut off for fraud, spam or unverified identity) by channel and agent; each
    holder's verifications (when, by which method: a re-verification campaign finds those verified before a
    date or by a method no longer accepted) and each tenure's suspension for an unverified identity (by
    which request: a campaign's request ids name it)."""

    name = "compliance"
    version = 2
    tables = ("rm_cmp_subscribers", "rm_cmp_tenures", "rm_cmp_agents", "rm_cmp_numbers", "rm_cmp_verifications")
    schema = (
        """CREATE TABLE IF NOT EXISTS rm_cmp_subscribers (
            subscriber_id TEXT PRIMARY KEY, verified_us BIGINT, erased_us BIGINT, latest_verified_us BIGINT,
            latest_method TEXT)""",
        """CREATE TABLE IF NOT EXISTS rm_cmp_tenures (
            tenure_id TEXT PRIMARY KEY, number_id TEXT NOT NULL, subscriber_id TEXT NOT NULL,
            channel TEXT NOT NULL, agent_id TEXT NOT NULL, activated_us BIGINT NOT NULL,
            open BIGINT NOT NULL, flagged BIGINT NOT NULL DEFAULT 0, suspended BIGINT NOT NULL DEFAULT 0,
            unverified_suspension TEXT NOT NULL DEFAULT '', unverified_suspended_us BIGINT)""",
        "CREATE INDEX IF NOT EXISTS rm_cmp_tenures_open ON rm_cmp_tenures (number_id, open)",
        """CREATE TABLE IF NOT EXISTS rm_cmp_agents (
            channel TEXT NOT NULL, agent_id TEXT NOT NULL, verifications BIGINT NOT NULL DEFAULT 0,
            activations BIGINT NOT NULL DEFAULT 0, violations BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (channel, agent_id))""",
        "CREATE TABLE IF NOT EXISTS rm_cmp_numbers (number_id TEXT PRIMARY KEY, number TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS rm_cmp_verifications (
            position BIGINT PRIMARY KEY, subscriber_id TEXT NOT NULL, verified_us BIGINT NOT NULL,
            method TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS rm_cmp_verifications_by ON rm_cmp_verifications (subscriber_id)",
    )
    by_number = (
        NumberRows("rm_cmp_tenures", "number_id", "id", "tenure_id"),
        NumberRows("rm_cmp_numbers", "number_id", "id", "number_id"),
    )
    stored = (
        Stored(
            "rm_cmp_subscribers",
            ("subscriber_id",),
            ("subscriber_id", "verified_us", "erased_us", "latest_verified_us", "latest_method"),
            {"verified_us": None, "erased_us": None, "latest_verified_us": None, "latest_method": None},
            "subscriber_id = ANY(%(subscribers)s::text[])",
        ),
        Stored(
            "rm_cmp_tenures",
            ("tenure_id",),
            ("tenure_id", "number_id", "subscriber_id", "channel", "agent_id", "activated_us", "open", "flagged",
             "suspended", "unverified_suspension", "unverified_suspended_us"),
            {"flagged": 0, "suspended": 0, "unverified_suspension": "", "unverified_suspended_us": None},
            "number_id = ANY(%(numbers)s::text[])",
            group="number_id",
        ),
        Stored(
            "rm_cmp_agents",
            ("channel", "agent_id"),
            ("channel", "agent_id", "verifications", "activations", "violations"),
            {"verifications": 0, "activations": 0, "violations": 0},
            None,
            counts=True,
        ),
        Stored("rm_cmp_numbers", ("number_id",), ("number_id", "number"), {}, None),
        Stored(
            "rm_cmp_verifications", ("position",), ("position", "subscriber_id", "verified_us", "method"), {}, None
        ),
    )  # fmt: skip
    event_classes = (
        Subscriber.Registered,
        Subscriber.IdentityVerified,
        Subscriber.PersonalDataErased,
        Number.Provisioned,
        Number.Activated,
        Number.Suspended,
        Number.Resumed,
        Number.Disconnected,
        Number.PortedOut,
    )

    @singledispatchmethod
    def apply(self, event: Any, position: int, cur: Cursor) -> None:
        """Events this view does not use change nothing."""

    @apply.register
    def _(self, e: Subscriber.Registered, position: int, cur: Cursor) -> None:
        cur.execute("INSERT INTO rm_cmp_subscribers (subscriber_id) VALUES (?)", (e.originator_id.hex,))

    @apply.register
    def _(self, e: Subscriber.IdentityVerified, position: int, cur: Cursor) -> None:
        at = us(e.occurred_at)
        cur.execute(
            "UPDATE rm_cmp_subscribers SET verified_us=COALESCE(verified_us, ?), latest_verified_us=?, "
            "latest_method=? WHERE subscriber_id=?",
            (at, at, e.method, e.originator_id.hex),
        )
        cur.execute(
            "INSERT INTO rm_cmp_verifications (position, subscriber_id, verified_us, method) VALUES (?, ?, ?, ?)",
            (position, e.originator_id.hex, at, e.method),
        )
        self._count(cur, e.channel, e.agent_id, "verifications")

    @apply.register
    def _(self, e: Subscriber.PersonalDataErased, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_cmp_subscribers SET erased_us=? WHERE subscriber_id=?", (us(e.occurred_at), e.originator_id.hex)
        )

    @apply.register
    def _(self, e: Number.Provisioned, position: int, cur: Cursor) -> None:
        cur.execute("INSERT INTO rm_cmp_numbers (number_id, number) VALUES (?, ?)", (e.originator_id.hex, e.number))

    @apply.register
    def _(self, e: Number.Activated, position: int, cur: Cursor) -> None:
        cur.execute(
            "INSERT INTO rm_cmp_tenures (tenure_id, number_id, subscriber_id, channel, agent_id, activated_us, open) "
            "VALUES (?, ?, ?, ?, ?, ?, 1)",
            (e.tenure_id.hex, e.originator_id.hex, e.subscriber_id.hex, e.channel, e.agent_id, us(e.occurred_at)),
        )
        self._count(cur, e.channel, e.agent_id, "activations")

    @apply.register
    def _(self, e: Number.Suspended, position: int, cur: Cursor) -> None:
        if e.reason in VIOLATION_SUSPENSIONS:
            self._flag_open_tenure(cur, e.originator_id.hex)
        cur.execute("UPDATE rm_cmp_tenures SET suspended=1 WHERE number_id=? AND open=1", (e.originator_id.hex,))
        if e.reason == SuspensionReason.UNVERIFIED_IDENTITY:
            cur.execute(
                "UPDATE rm_cmp_tenures SET unverified_suspension=?, unverified_suspended_us=? "
                "WHERE number_id=? AND open=1",
                (e.request_id, us(e.occurred_at), e.originator_id.hex),
            )

    @apply.register
    def _(self, e: Number.Resumed, position: int, cur: Cursor) -> None:
        cur.execute("UPDATE rm_cmp_tenures SET suspended=0 WHERE number_id=? AND open=1", (e.originator_id.hex,))

    @apply.register
    def _(self, e: Number.Disconnected, position: int, cur: Cursor) -> None:
        if e.reason in VIOLATION_DISCONNECTIONS:
            self._flag_open_tenure(cur, e.originator_id.hex)
        cur.execute("UPDATE rm_cmp_tenures SET open=0 WHERE tenure_id=?", (e.tenure_id.hex,))

    @apply.register
    def _(self, e: Number.PortedOut, position: int, cur: Cursor) -> None:
        cur.execute("UPDATE rm_cmp_tenures SET open=0 WHERE tenure_id=?", (e.tenure_id.hex,))

    def _flag_open_tenure(self, cur: Cursor, number_id: str) -> None:
        row = cur.execute(
            "SELECT tenure_id, channel, agent_id FROM rm_cmp_tenures WHERE number_id=? AND open=1 AND flagged=0",
            (number_id,),
        ).fetchone()
        if row is not None:
            cur.execute("UPDATE rm_cmp_tenures SET flagged=1 WHERE tenure_id=?", (row[0],))
            self._count(cur, row[1], row[2], "violations")

    @staticmethod
    def _count(cur: Cursor, channel: str, agent_id: str, column: str) -> None:
        cur.execute(
            f"INSERT INTO rm_cmp_agents (channel, agent_id, {column}) VALUES (?, ?, 1) "
            f"ON CONFLICT (channel, agent_id) DO UPDATE SET {column}=rm_cmp_agents.{column}+1",
            (channel, agent_id),
        )

    # -- a generation being built: the same changes on a batch's rows in memory -----------------------

    @singledispatchmethod
    def build(self, event: Any, position: int, rows: Rows) -> None:
        """Events this view does not use change nothing."""

    @build.register
    def _(self, e: Subscriber.Registered, position: int, rows: Rows) -> None:
        rows["rm_cmp_subscribers"].insert(subscriber_id=e.originator_id.hex)

    @build.register
    def _(self, e: Subscriber.IdentityVerified, position: int, rows: Rows) -> None:
        at = us(e.occurred_at)
        subscriber = rows["rm_cmp_subscribers"].change(e.originator_id.hex)
        if subscriber is not None:
            if subscriber["verified_us"] is None:
                subscriber["verified_us"] = at
            subscriber.update(latest_verified_us=at, latest_method=e.method)
        rows["rm_cmp_verifications"].insert(
            position=position, subscriber_id=e.originator_id.hex, verified_us=at, method=e.method
        )
        rows["rm_cmp_agents"].count((e.channel, e.agent_id), "verifications")

    @build.register
    def _(self, e: Subscriber.PersonalDataErased, position: int, rows: Rows) -> None:
        subscriber = rows["rm_cmp_subscribers"].change(e.originator_id.hex)
        if subscriber is not None:
            subscriber["erased_us"] = us(e.occurred_at)

    @build.register
    def _(self, e: Number.Provisioned, position: int, rows: Rows) -> None:
        rows["rm_cmp_numbers"].insert(number_id=e.originator_id.hex, number=e.number)

    @build.register
    def _(self, e: Number.Activated, position: int, rows: Rows) -> None:
        rows["rm_cmp_tenures"].insert(
            tenure_id=e.tenure_id.hex, number_id=e.originator_id.hex, subscriber_id=e.subscriber_id.hex,
            channel=e.channel, agent_id=e.agent_id, activated_us=us(e.occurred_at), open=1,
        )  # fmt: skip
        rows["rm_cmp_agents"].count((e.channel, e.agent_id), "activations")

    @build.register
    def _(self, e: Number.Suspended, position: int, rows: Rows) -> None:
        nid = e.originator_id.hex
        if e.reason in VIOLATION_SUSPENSIONS:
            self._flag_open_tenure_rows(rows, nid)
        tenures = rows["rm_cmp_tenures"]
        for tenure in tenures.of(nid):
            if tenure["open"] == 1:
                tenures.change(tenure["tenure_id"])
                tenure["suspended"] = 1
                if e.reason == SuspensionReason.UNVERIFIED_IDENTITY:
                    tenure.update(unverified_suspension=e.request_id, unverified_suspended_us=us(e.occurred_at))

    @build.register
    def _(self, e: Number.Resumed, position: int, rows: Rows) -> None:
        tenures = rows["rm_cmp_tenures"]
        for tenure in tenures.of(e.originator_id.hex):
            if tenure["open"] == 1:
                tenures.change(tenure["tenure_id"])
                tenure["suspended"] = 0

    @build.register
    def _(self, e: Number.Disconnected, position: int, rows: Rows) -> None:
        if e.reason in VIOLATION_DISCONNECTIONS:
            self._flag_open_tenure_rows(rows, e.originator_id.hex)
        self._close(rows, e.tenure_id.hex)

    @build.register
    def _(self, e: Number.PortedOut, position: int, rows: Rows) -> None:
        self._close(rows, e.tenure_id.hex)

    @staticmethod
    def _close(rows: Rows, tenure_id: str) -> None:
        tenure = rows["rm_cmp_tenures"].change(tenure_id)
        if tenure is not None:
            tenure["open"] = 0

    @staticmethod
    def _flag_open_tenure_rows(rows: Rows, number_id: str) -> None:
        tenures = rows["rm_cmp_tenures"]
        for tenure in tenures.of(number_id):
            if tenure["open"] == 1 and tenure["flagged"] == 0:
                tenures.change(tenure["tenure_id"])
                tenure["flagged"] = 1
                rows["rm_cmp_agents"].count((tenure["channel"], tenure["agent_id"]), "violations")
                return
