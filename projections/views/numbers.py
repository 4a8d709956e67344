"""The numbers view: number status and tenures, per-holder clearance of closed tenures, check rows."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import orjson
from eventsourcing.dispatch import singledispatchmethod

from ledger.domain.number import Number
from ledger.domain.rules import tenure_clearance
from projections.building import Rows, Stored
from projections.db import Cursor
from projections.seal import Sealed
from projections.views.base import NumberRows, View, us


class CheckRow(NamedTuple):
    """What a recycling check reads of a number: its ``rm_checks`` row, the columns in this order (the
    statement that reads them and the keyed hash over them follow the fields; see ``NumbersView``)."""

    number: str
    provisioned_us: int
    current_activated_us: int | None
    last_disconnected_us: int | None
    closed: str
    ported_out_us: int | None


# The sealed columns of each table, in the order readers read them (the hash follows them).
CHECK_COLUMNS: tuple[str, ...] = CheckRow._fields
NUMBER_COLUMNS = (
    "number_id", "number", "status", "provisioned_us", "subscriber_id", "tenure_id", "suspension_reason",
    "tenure_count", "last_position",
)  # fmt: skip
TENURE_COLUMNS = (
    "tenure_id", "number_id", "ordinal", "subscriber_id", "iccid", "channel", "agent_id", "activated_us",
    "disconnected_us", "disconnect_reason", "quarantine_until_us", "required_holders", "outstanding_holders",
    "confirmations", "released_us", "override_reason", "violation", "ported_to", "recipient_disconnected_us",
)  # fmt: skip


class NumbersView(View):
    """Number status and tenures: current holder, quarantine, per-holder clearance of closed tenures.

    ``rm_checks`` holds what a recycling check needs, one narrow row per number keyed by the number
    itself (on SQLite without a rowid, so a lookup walks one B-tree), and decodes nothing in the common
    case: ``provisioned_us``, ``current_activated_us`` (the open tenure's start, NULL when none is open),
    ``last_disconnected_us`` (a port-out is none; the recipient's disconnection of a returned number is),
    ``closed``, the closed tenures oldest first as JSON ``[[disconnected_us, clearance, [outstanding
    holders]], ...]`` (read only when one closed on or after the date asked), and ``ported_out_us`` while
    the number is served by another operator. ``provisioned_us`` is when the records begin: a port-in of
    a number ported out from here starts them again."""

    name = "numbers"
    version = 5
    tables = ("rm_numbers", "rm_tenures", "rm_checks")
    schema = (
        """CREATE TABLE IF NOT EXISTS rm_numbers (
            number_id TEXT PRIMARY KEY, number TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
            provisioned_us BIGINT NOT NULL, subscriber_id TEXT, tenure_id TEXT, suspension_reason TEXT,
            tenure_count BIGINT NOT NULL DEFAULT 0, last_position BIGINT NOT NULL, mac TEXT)""",
        """CREATE TABLE IF NOT EXISTS rm_tenures (
            tenure_id TEXT PRIMARY KEY, number_id TEXT NOT NULL, ordinal BIGINT NOT NULL,
            subscriber_id TEXT NOT NULL, iccid TEXT NOT NULL, channel TEXT NOT NULL, agent_id TEXT NOT NULL,
            activated_us BIGINT NOT NULL, disconnected_us BIGINT, disconnect_reason TEXT,
            quarantine_until_us BIGINT, required_holders TEXT, outstanding_holders TEXT,
            confirmations TEXT, released_us BIGINT, override_reason TEXT, violation BIGINT NOT NULL DEFAULT 0,
            ported_to TEXT, recipient_disconnected_us BIGINT, mac TEXT)""",
        "CREATE INDEX IF NOT EXISTS rm_tenures_number ON rm_tenures (number_id, ordinal)",
        "CREATE INDEX IF NOT EXISTS rm_numbers_status ON rm_numbers (status)",
        """CREATE TABLE IF NOT EXISTS rm_checks (
            number TEXT PRIMARY KEY, provisioned_us BIGINT NOT NULL, current_activated_us BIGINT,
            last_disconnected_us BIGINT, closed TEXT NOT NULL DEFAULT '[]', ported_out_us BIGINT, mac TEXT)
            WITHOUT ROWID""",
    )
    # Every row a check or a clearance answer reads carries a keyed hash; a tenure row names its number and
    # ordinal, and the number row its tenure count, so a deleted or borrowed tenure row is found too.
    sealed = (
        Sealed(
            "rm_checks", "number", CHECK_COLUMNS, "number IN (SELECT number FROM rm_numbers WHERE number_id IN ({ids}))"
        ),
        Sealed("rm_numbers", "number_id", NUMBER_COLUMNS, "number_id IN ({ids})"),
        Sealed("rm_tenures", "tenure_id", TENURE_COLUMNS, "number_id IN ({ids})"),
    )
    by_number = (
        NumberRows("rm_numbers", "number_id", "id", "number_id"),
        NumberRows("rm_tenures", "number_id", "id", "tenure_id"),
        NumberRows("rm_checks", "number", "text", "number"),
    )
    _OF_NUMBERS = "number_id = ANY(%(numbers)s::text[])"
    stored = (
        Stored(
            "rm_numbers",
            ("number_id",),
            (*NUMBER_COLUMNS, "mac"),
            {"subscriber_id": None, "tenure_id": None, "suspension_reason": None, "tenure_count": 0, "mac": None},
            _OF_NUMBERS,
        ),
        Stored(
            "rm_tenures",
            ("tenure_id",),
            (*TENURE_COLUMNS, "mac"),
            {c: None for c in (*TENURE_COLUMNS, "mac")} | {"violation": 0},
            _OF_NUMBERS,
            group="number_id",
        ),
        Stored(
            "rm_checks",
            ("number",),
            (*CHECK_COLUMNS, "mac"),
            {"current_activated_us": None, "last_disconnected_us": None, "closed": "[]", "ported_out_us": None,
             "mac": None},
            f"number IN (SELECT number FROM rm_numbers WHERE {_OF_NUMBERS})",
        ),
    )  # fmt: skip
    event_classes = (
        Number.Provisioned,
        Number.Activated,
        Number.SimSwapped,
        Number.Suspended,
        Number.Resumed,
        Number.Disconnected,
        Number.DataClearanceConfirmed,
        Number.Released,
        Number.PortedOut,
        Number.PortedIn,
        Number.Returned,
    )

    # The closed tenures of the numbers seen lately, as rm_tenures holds them, so that a confirmation and
    # the summary in rm_checks need no read (on PostgreSQL a read costs a round trip and sends the writes
    # held before it). Entries: [tenure_id, disconnected_us, outstanding holders, violation, confirmations],
    # oldest first. When ``_complete`` (the view was empty when this projector began, and no other wrote
    # since) a number missing here has no closed tenure; otherwise a missing one is read.
    CACHE_LIMIT: ClassVar[int] = 200_000

    def __init__(self) -> None:
        self._closed: dict[str, list[list[Any]]] = {}
        self._complete = False

    def forget(self) -> None:
        """Drop the cached closed tenures."""
        self._closed.clear()
        self._complete = False

    def start_empty(self) -> None:
        """The view is empty: no number has a closed tenure."""
        self._closed.clear()
        self._complete = True

    def _remember(self, nid: str, closed: list[list[Any]]) -> list[list[Any]]:
        if len(self._closed) >= self.CACHE_LIMIT:
            self.forget()  # bounded memory; numbers are read again when next needed
        self._closed[nid] = closed
        return closed

    def _cached(self, nid: str) -> list[list[Any]] | None:
        """A number's closed tenures if known without a read (to update along with the rows)."""
        closed = self._closed.get(nid)
        if closed is None and self._complete:
            closed = self._remember(nid, [])
        return closed

    def _closed_of(self, cur: Cursor, nid: str) -> list[list[Any]]:
        """A number's closed tenures, read from rm_tenures when not known."""
        closed = self._cached(nid)
        if closed is None:
            rows = cur.execute(
                "SELECT tenure_id, disconnected_us, outstanding_holders, violation, confirmations FROM rm_tenures "
                "WHERE number_id=? AND disconnected_us IS NOT NULL ORDER BY ordinal",
                (nid,),
            ).fetchall()
            closed = [
                [t, end, orjson.loads(out or "[]"), int(v or 0), orjson.loads(conf or "[]")]
                for t, end, out, v, conf in rows
            ]
            self._remember(nid, closed)
        return closed

    @singledispatchmethod
    def apply(self, event: Any, position: int, cur: Cursor) -> None:
        """Events this view does not use change nothing."""

    @apply.register
    def _(self, e: Number.Provisioned, position: int, cur: Cursor) -> None:
        cur.execute(
            "INSERT INTO rm_numbers (number_id, number, status, provisioned_us, last_position) "
            "VALUES (?, ?, 'AVAILABLE', ?, ?)",
            (e.originator_id.hex, e.number, us(e.occurred_at), position),
        )
        cur.execute("INSERT INTO rm_checks (number, provisioned_us) VALUES (?, ?)", (e.number, us(e.occurred_at)))

    @apply.register
    def _(self, e: Number.Activated, position: int, cur: Cursor) -> None:
        nid = e.originator_id.hex
        activated = us(e.occurred_at)
        cur.execute(
            "UPDATE rm_numbers SET status='ACTIVE', subscriber_id=?, tenure_id=?, suspension_reason=NULL, "
            "tenure_count=tenure_count+1, last_position=? WHERE number_id=?",
            (e.subscriber_id.hex, e.tenure_id.hex, position, nid),
        )
        cur.execute(f"UPDATE rm_checks SET current_activated_us=? WHERE number={_NUMBER_OF}", (activated, nid))
        cur.execute(
            "INSERT INTO rm_tenures (tenure_id, number_id, ordinal, subscriber_id, iccid, channel, agent_id, "
            "activated_us) VALUES (?, ?, (SELECT tenure_count FROM rm_numbers WHERE number_id=?), ?, ?, ?, ?, ?)",
            (e.tenure_id.hex, nid, nid, e.subscriber_id.hex, e.iccid, e.channel, e.agent_id, activated),
        )

    @apply.register
    def _(self, e: Number.SimSwapped, position: int, cur: Cursor) -> None:
        cur.execute("UPDATE rm_tenures SET iccid=? WHERE tenure_id=?", (e.new_iccid, e.tenure_id.hex))
        self._touch(cur, e, position)

    @apply.register
    def _(self, e: Number.Suspended, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_numbers SET status='SUSPENDED', suspension_reason=?, last_position=? WHERE number_id=?",
            (e.reason, position, e.originator_id.hex),
        )

    @apply.register
    def _(self, e: Number.Resumed, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_numbers SET status='ACTIVE', suspension_reason=NULL, last_position=? WHERE number_id=?",
            (position, e.originator_id.hex),
        )

    @apply.register
    def _(self, e: Number.Disconnected, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_numbers SET status='QUARANTINED', subscriber_id=NULL, tenure_id=NULL, "
            "suspension_reason=NULL, last_position=? WHERE number_id=?",
            (position, e.originator_id.hex),
        )
        cur.execute(
            f"UPDATE rm_checks SET current_activated_us=NULL, last_disconnected_us=? WHERE number={_NUMBER_OF}",
            (us(e.occurred_at), e.originator_id.hex),
        )
        holders = orjson.dumps(list(e.required_holders)).decode()
        cur.execute(
            "UPDATE rm_tenures SET disconnected_us=?, disconnect_reason=?, quarantine_until_us=?, "
            "required_holders=?, outstanding_holders=?, confirmations='[]' WHERE tenure_id=?",
            (us(e.occurred_at), e.reason, us(e.quarantine_until), holders, holders, e.tenure_id.hex),
        )
        closed = self._cached(e.originator_id.hex)
        if closed is not None:  # otherwise the read below finds the row just written
            closed.append([e.tenure_id.hex, us(e.occurred_at), list(e.required_holders), 0, []])
        self._summarise_closed(cur, e)

    @apply.register
    def _(self, e: Number.DataClearanceConfirmed, position: int, cur: Cursor) -> None:
        tid = e.tenure_id.hex
        tenure = next(t for t in self._closed_of(cur, e.originator_id.hex) if t[0] == tid)
        tenure[2] = [h for h in tenure[2] if h != e.holder]
        tenure[4] = [*tenure[4], [e.holder, e.evidence_ref, us(e.occurred_at)]]
        cur.execute(
            "UPDATE rm_tenures SET outstanding_holders=?, confirmations=? WHERE tenure_id=?",
            (orjson.dumps(tenure[2]).decode(), orjson.dumps(tenure[4]).decode(), tid),
        )
        self._touch(cur, e, position)
        self._summarise_closed(cur, e)

    @apply.register
    def _(self, e: Number.Released, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_numbers SET status='AVAILABLE', last_position=? WHERE number_id=?",
            (position, e.originator_id.hex),
        )
        cur.execute(
            "UPDATE rm_tenures SET released_us=?, override_reason=?, violation=? WHERE tenure_id=?",
            (us(e.occurred_at), e.override_reason, int(e.clearance_overridden), e.tenure_id.hex),
        )
        if e.clearance_overridden:
            closed = self._closed.get(e.originator_id.hex)
            for tenure in closed or ():
                if tenure[0] == e.tenure_id.hex:
                    tenure[3] = 1
            self._summarise_closed(cur, e)

    @apply.register
    def _(self, e: Number.PortedOut, position: int, cur: Cursor) -> None:
        nid, end = e.originator_id.hex, us(e.occurred_at)
        cur.execute(
            "UPDATE rm_numbers SET status='PORTED_OUT', subscriber_id=NULL, tenure_id=NULL, suspension_reason=NULL, "
            "last_position=? WHERE number_id=?",
            (position, nid),
        )
        cur.execute(
            f"UPDATE rm_checks SET current_activated_us=NULL, ported_out_us=? WHERE number={_NUMBER_OF}", (end, nid)
        )
        holders = orjson.dumps(list(e.required_holders)).decode()
        cur.execute(
            "UPDATE rm_tenures SET disconnected_us=?, disconnect_reason='PORTED_OUT', ported_to=?, "
            "required_holders=?, outstanding_holders=?, confirmations='[]' WHERE tenure_id=?",
            (end, e.recipient_operator, holders, holders, e.tenure_id.hex),
        )
        closed = self._cached(nid)
        if closed is not None:  # otherwise the read below finds the row just written
            closed.append([e.tenure_id.hex, end, list(e.required_holders), 0, []])
        self._summarise_closed(cur, e)

    @apply.register
    def _(self, e: Number.PortedIn, position: int, cur: Cursor) -> None:
        nid, start = e.originator_id.hex, us(e.occurred_at)
        cur.execute(
            "UPDATE rm_numbers SET status='AVAILABLE', provisioned_us=?, last_position=? WHERE number_id=?",
            (start, position, nid),
        )
        cur.execute(
            f"UPDATE rm_checks SET provisioned_us=?, ported_out_us=NULL WHERE number={_NUMBER_OF}", (start, nid)
        )

    @apply.register
    def _(self, e: Number.Returned, position: int, cur: Cursor) -> None:
        nid, end = e.originator_id.hex, us(e.disconnected_at)
        cur.execute("UPDATE rm_numbers SET status='QUARANTINED', last_position=? WHERE number_id=?", (position, nid))
        cur.execute(
            "UPDATE rm_checks SET ported_out_us=NULL, last_disconnected_us=CASE WHEN last_disconnected_us IS NULL "
            f"OR last_disconnected_us < ? THEN ? ELSE last_disconnected_us END WHERE number={_NUMBER_OF}",
            (end, end, nid),
        )
        cur.execute(
            "UPDATE rm_tenures SET quarantine_until_us=?, recipient_disconnected_us=? WHERE tenure_id=?",
            (us(e.quarantine_until), end, e.tenure_id.hex),
        )

    @staticmethod
    def _touch(cur: Cursor, e: Number.Event, position: int) -> None:
        cur.execute("UPDATE rm_numbers SET last_position=? WHERE number_id=?", (position, e.originator_id.hex))

    def _summarise_closed(self, cur: Cursor, e: Number.Event | Number.PortedOut) -> None:
        nid = e.originator_id.hex
        closed = [
            [end, _clearance(outstanding, violation), outstanding]
            for _, end, outstanding, violation, _ in self._closed_of(cur, nid)
        ]
        cur.execute(f"UPDATE rm_checks SET closed=? WHERE number={_NUMBER_OF}", (orjson.dumps(closed).decode(), nid))

    # -- a generation being built: the same changes on a batch's rows in memory -----------------------

    @singledispatchmethod
    def build(self, event: Any, position: int, rows: Rows) -> None:
        """Events this view does not use change nothing."""

    @build.register
    def _(self, e: Number.Provisioned, position: int, rows: Rows) -> None:
        at = us(e.occurred_at)
        nid = e.originator_id.hex
        rows["rm_numbers"].insert(
            number_id=nid, number=e.number, status="AVAILABLE", provisioned_us=at, last_position=position
        )
        rows["rm_checks"].insert(number=e.number, provisioned_us=at)

    @build.register
    def _(self, e: Number.Activated, position: int, rows: Rows) -> None:
        nid = e.originator_id.hex
        activated = us(e.occurred_at)
        number = rows["rm_numbers"].change(nid)
        if number is not None:
            number.update(
                status="ACTIVE", subscriber_id=e.subscriber_id.hex, tenure_id=e.tenure_id.hex, suspension_reason=None,
                tenure_count=number["tenure_count"] + 1, last_position=position,
            )  # fmt: skip
            check = rows["rm_checks"].change(number["number"])
            if check is not None:
                check["current_activated_us"] = activated
        rows["rm_tenures"].insert(
            tenure_id=e.tenure_id.hex, number_id=nid, ordinal=number["tenure_count"] if number else None,
            subscriber_id=e.subscriber_id.hex, iccid=e.iccid, channel=e.channel, agent_id=e.agent_id,
            activated_us=activated,
        )  # fmt: skip

    @build.register
    def _(self, e: Number.SimSwapped, position: int, rows: Rows) -> None:
        tenure = rows["rm_tenures"].change(e.tenure_id.hex)
        if tenure is not None:
            tenure["iccid"] = e.new_iccid
        self._number(rows, e, last_position=position)

    @build.register
    def _(self, e: Number.Suspended, position: int, rows: Rows) -> None:
        self._number(rows, e, status="SUSPENDED", suspension_reason=e.reason, last_position=position)

    @build.register
    def _(self, e: Number.Resumed, position: int, rows: Rows) -> None:
        self._number(rows, e, status="ACTIVE", suspension_reason=None, last_position=position)

    @build.register
    def _(self, e: Number.Disconnected, position: int, rows: Rows) -> None:
        end = us(e.occurred_at)
        number = self._number(
            rows, e, status="QUARANTINED", subscriber_id=None, tenure_id=None, suspension_reason=None,
            last_position=position,
        )  # fmt: skip
        self._check(rows, number, current_activated_us=None, last_disconnected_us=end)
        holders = orjson.dumps(list(e.required_holders)).decode()
        tenure = rows["rm_tenures"].change(e.tenure_id.hex)
        if tenure is not None:
            tenure.update(
                disconnected_us=end, disconnect_reason=e.reason, quarantine_until_us=us(e.quarantine_until),
                required_holders=holders, outstanding_holders=holders, confirmations="[]",
            )  # fmt: skip
        self._summarise_rows(rows, e.originator_id.hex, number)

    @build.register
    def _(self, e: Number.DataClearanceConfirmed, position: int, rows: Rows) -> None:
        nid = e.originator_id.hex
        tenure = next(
            t
            for t in rows["rm_tenures"].of(nid)
            if t["tenure_id"] == e.tenure_id.hex and t["disconnected_us"] is not None
        )
        rows["rm_tenures"].change(tenure["tenure_id"])
        outstanding = [h for h in orjson.loads(tenure["outstanding_holders"] or "[]") if h != e.holder]
        confirmations = [*orjson.loads(tenure["confirmations"] or "[]"), [e.holder, e.evidence_ref, us(e.occurred_at)]]
        tenure["outstanding_holders"] = orjson.dumps(outstanding).decode()
        tenure["confirmations"] = orjson.dumps(confirmations).decode()
        number = self._number(rows, e, last_position=position)
        self._summarise_rows(rows, nid, number)

    @build.register
    def _(self, e: Number.Released, position: int, rows: Rows) -> None:
        number = self._number(rows, e, status="AVAILABLE", last_position=position)
        tenure = rows["rm_tenures"].change(e.tenure_id.hex)
        if tenure is not None:
            tenure.update(
                released_us=us(e.occurred_at), override_reason=e.override_reason,
                violation=int(e.clearance_overridden),
            )  # fmt: skip
        if e.clearance_overridden:
            self._summarise_rows(rows, e.originator_id.hex, number)

    @build.register
    def _(self, e: Number.PortedOut, position: int, rows: Rows) -> None:
        end = us(e.occurred_at)
        number = self._number(
            rows, e, status="PORTED_OUT", subscriber_id=None, tenure_id=None, suspension_reason=None,
            last_position=position,
        )  # fmt: skip
        self._check(rows, number, current_activated_us=None, ported_out_us=end)
        holders = orjson.dumps(list(e.required_holders)).decode()
        tenure = rows["rm_tenures"].change(e.tenure_id.hex)
        if tenure is not None:
            tenure.update(
                disconnected_us=end, disconnect_reason="PORTED_OUT", ported_to=e.recipient_operator,
                required_holders=holders, outstanding_holders=holders, confirmations="[]",
            )  # fmt: skip
        self._summarise_rows(rows, e.originator_id.hex, number)

    @build.register
    def _(self, e: Number.PortedIn, position: int, rows: Rows) -> None:
        start = us(e.occurred_at)
        number = self._number(rows, e, status="AVAILABLE", provisioned_us=start, last_position=position)
        self._check(rows, number, provisioned_us=start, ported_out_us=None)

    @build.register
    def _(self, e: Number.Returned, position: int, rows: Rows) -> None:
        end = us(e.disconnected_at)
        number = self._number(rows, e, status="QUARANTINED", last_position=position)
        check = self._check(rows, number, ported_out_us=None)
        if check is not None and (check["last_disconnected_us"] is None or check["last_disconnected_us"] < end):
            check["last_disconnected_us"] = end
        tenure = rows["rm_tenures"].change(e.tenure_id.hex)
        if tenure is not None:
            tenure.update(quarantine_until_us=us(e.quarantine_until), recipient_disconnected_us=end)

    @staticmethod
    def _number(rows: Rows, e: Number.Event, **changes: Any) -> dict[str, Any] | None:
        return rows["rm_numbers"].update(e.originator_id.hex, **changes)

    @staticmethod
    def _check(rows: Rows, number: dict[str, Any] | None, **changes: Any) -> dict[str, Any] | None:
        check = rows["rm_checks"].change(number["number"]) if number is not None else None
        if check is not None:
            check.update(changes)
        return check

    @staticmethod
    def _summarise_rows(rows: Rows, nid: str, number: dict[str, Any] | None) -> None:
        tenures = sorted(rows["rm_tenures"].of(nid), key=lambda t: t["ordinal"])
        closed = []
        for t in tenures:
            if t["disconnected_us"] is not None:
                outstanding = orjson.loads(t["outstanding_holders"] or "[]")
                closed.append([t["disconnected_us"], _clearance(outstanding, int(t["violation"] or 0)), outstanding])
        NumbersView._check(rows, number, closed=orjson.dumps(closed).decode())


# The number (text) of a number id, for rows keyed by the number.
_NUMBER_OF = "(SELECT number FROM rm_numbers WHERE number_id=?)"


def _clearance(outstanding: list[str], violation: int) -> str:
    return tenure_clearance(False, bool(violation), bool(outstanding)).value
