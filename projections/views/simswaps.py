"""The SIM swaps view: when each number's SIM last changed (CAMARA SIM Swap), and the latest swap per number."""

from __future__ import annotations

from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from ledger.domain.number import Number
from projections.building import Rows, Stored
from projections.db import Cursor
from projections.seal import Sealed
from projections.views.base import NumberRows, View, us

# The sealed columns of a number's SIM row, in the order readers read them (the hash follows them).
SWAP_COLUMNS = ("number_id", "number", "monitored_since_us", "activated_us", "ported_out_us", "swapped_us")


class SimSwapsView(View):
    """The latest SIM swap of each number (fraud desks check it before trusting a one-time code), and per
    number when its records begin (``monitored_since_us``: provisioned or ported in), its latest SIM
    activation for a new subscription (``activated_us``) and, while it is served elsewhere, its port-out."""

    name = "sim_swaps"
    version = 3
    tables = ("rm_swap_numbers", "rm_sim_swaps")
    schema = (
        """CREATE TABLE IF NOT EXISTS rm_swap_numbers (number_id TEXT PRIMARY KEY, number TEXT NOT NULL,
            monitored_since_us BIGINT NOT NULL, activated_us BIGINT, ported_out_us BIGINT, swapped_us BIGINT,
            mac TEXT)""",
        """CREATE TABLE IF NOT EXISTS rm_sim_swaps (
            number TEXT PRIMARY KEY, swapped_us BIGINT NOT NULL, old_iccid TEXT NOT NULL,
            new_iccid TEXT NOT NULL, reason TEXT NOT NULL, channel TEXT NOT NULL, agent_id TEXT NOT NULL,
            swap_count BIGINT NOT NULL, position BIGINT NOT NULL)""",
    )
    # The answers read one row per number (the latest swap is kept on it too), which carries a keyed hash.
    sealed = (Sealed("rm_swap_numbers", "number_id", SWAP_COLUMNS, "number_id IN ({ids})"),)
    by_number = (
        NumberRows("rm_swap_numbers", "number_id", "id", "number_id"),
        NumberRows("rm_sim_swaps", "number", "text", "number"),
    )
    stored = (
        Stored(
            "rm_swap_numbers",
            ("number_id",),
            (*SWAP_COLUMNS, "mac"),
            {"activated_us": None, "ported_out_us": None, "swapped_us": None, "mac": None},
            "number_id = ANY(%(numbers)s::text[])",
        ),
        Stored(
            "rm_sim_swaps",
            ("number",),
            ("number", "swapped_us", "old_iccid", "new_iccid", "reason", "channel", "agent_id", "swap_count",
             "position"),
            {},
            "number IN (SELECT number FROM rm_swap_numbers WHERE number_id = ANY(%(numbers)s::text[]))",
        ),
    )  # fmt: skip
    event_classes = (
        Number.Provisioned,
        Number.SimSwapped,
        Number.Activated,
        Number.PortedOut,
        Number.PortedIn,
        Number.Returned,
    )

    @singledispatchmethod
    def apply(self, event: Any, position: int, cur: Cursor) -> None:
        """Events this view does not use change nothing."""

    @apply.register
    def _(self, e: Number.Provisioned, position: int, cur: Cursor) -> None:
        cur.execute(
            "INSERT INTO rm_swap_numbers (number_id, number, monitored_since_us) VALUES (?, ?, ?)",
            (e.originator_id.hex, e.number, us(e.occurred_at)),
        )

    @apply.register
    def _(self, e: Number.Activated, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_swap_numbers SET activated_us=? WHERE number_id=?", (us(e.occurred_at), e.originator_id.hex)
        )

    @apply.register
    def _(self, e: Number.PortedOut, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_swap_numbers SET ported_out_us=? WHERE number_id=?", (us(e.occurred_at), e.originator_id.hex)
        )

    @apply.register
    def _(self, e: Number.Returned, position: int, cur: Cursor) -> None:
        cur.execute("UPDATE rm_swap_numbers SET ported_out_us=NULL WHERE number_id=?", (e.originator_id.hex,))

    @apply.register
    def _(self, e: Number.PortedIn, position: int, cur: Cursor) -> None:
        # Records begin again: what happened to the SIM while the number was elsewhere is not known here.
        cur.execute(
            "UPDATE rm_swap_numbers SET monitored_since_us=?, ported_out_us=NULL WHERE number_id=?",
            (us(e.occurred_at), e.originator_id.hex),
        )

    @apply.register
    def _(self, e: Number.SimSwapped, position: int, cur: Cursor) -> None:
        cur.execute(
            "UPDATE rm_swap_numbers SET swapped_us=? WHERE number_id=?", (us(e.occurred_at), e.originator_id.hex)
        )
        cur.execute(
            "INSERT INTO rm_sim_swaps (number, swapped_us, old_iccid, new_iccid, reason, channel, agent_id, "
            "swap_count, position) SELECT number, ?, ?, ?, ?, ?, ?, 1, ? FROM rm_swap_numbers WHERE number_id=? "
            "ON CONFLICT (number) DO UPDATE SET swapped_us=excluded.swapped_us, old_iccid=excluded.old_iccid, "
            "new_iccid=excluded.new_iccid, reason=excluded.reason, channel=excluded.channel, "
            "agent_id=excluded.agent_id, swap_count=rm_sim_swaps.swap_count+1, position=excluded.position",
            (
                us(e.occurred_at),
                e.old_iccid,
                e.new_iccid,
                e.reason,
                e.channel,
                e.agent_id,
                position,
                e.originator_id.hex,
            ),
        )

    # -- a generation being built: the same changes on a batch's rows in memory -----------------------

    @singledispatchmethod
    def build(self, event: Any, position: int, rows: Rows) -> None:
        """Events this view does not use change nothing."""

    @build.register
    def _(self, e: Number.Provisioned, position: int, rows: Rows) -> None:
        at = us(e.occurred_at)
        rows["rm_swap_numbers"].insert(number_id=e.originator_id.hex, number=e.number, monitored_since_us=at)

    @build.register
    def _(self, e: Number.Activated, position: int, rows: Rows) -> None:
        self._number(rows, e, activated_us=us(e.occurred_at))

    @build.register
    def _(self, e: Number.PortedOut, position: int, rows: Rows) -> None:
        self._number(rows, e, ported_out_us=us(e.occurred_at))

    @build.register
    def _(self, e: Number.Returned, position: int, rows: Rows) -> None:
        self._number(rows, e, ported_out_us=None)

    @build.register
    def _(self, e: Number.PortedIn, position: int, rows: Rows) -> None:
        self._number(rows, e, monitored_since_us=us(e.occurred_at), ported_out_us=None)

    @build.register
    def _(self, e: Number.SimSwapped, position: int, rows: Rows) -> None:
        at = us(e.occurred_at)
        number = self._number(rows, e, swapped_us=at)
        if number is None:
            return
        swaps = rows["rm_sim_swaps"]
        latest = {
            "swapped_us": at, "old_iccid": e.old_iccid, "new_iccid": e.new_iccid, "reason": e.reason,
            "channel": e.channel, "agent_id": e.agent_id, "position": position,
        }  # fmt: skip
        swap = swaps.change(number["number"])
        if swap is None:
            swaps.insert(number=number["number"], swap_count=1, **latest)
        else:
            swap.update(latest, swap_count=swap["swap_count"] + 1)

    @staticmethod
    def _number(rows: Rows, e: Number.Event, **changes: Any) -> dict[str, Any] | None:
        return rows["rm_swap_numbers"].update(e.originator_id.hex, **changes)
