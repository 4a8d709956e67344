"""Read-model queries for the compliance report: the rows an analyst acts on (which numbers, subscribers
and holders), the period the views cover and a monthly trend. Each takes a views connection (anything
with ``execute(sql, params)``) and reads the view tables as the projector writes them."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import orjson

from projections.views import us

DAY_US = 86_400 * 1_000_000
TREND_SERIES = (
    "activations",
    "verifications",
    "real-name violations",
    "clearance violations",
    "disconnections",
    "recycled numbers",
)


class Connection(Protocol):
    """What these queries need of a views connection."""

    def execute(self, sql: str, params: Any = ...) -> Any:
        """Run a statement; returns a cursor."""
        ...


def _at(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1_000_000, UTC)


def _holders(text: str | None) -> list[str]:
    return [] if not text else [str(h) for h in orjson.loads(text)]


def count(conn: Connection, sql_from: str, params: tuple[Any, ...] = ()) -> int:
    """``SELECT count(*)`` over a FROM/WHERE clause."""
    return int(conn.execute(f"SELECT count(*) {sql_from}", params).fetchone()[0])


VIOLATIONS_FROM = "FROM rm_tenures t JOIN rm_numbers n ON n.number_id = t.number_id WHERE t.violation = 1"


def clearance_violations(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    """Tenures released before every holder confirmed clearance (by override), latest release first."""
    rows = conn.execute(
        "SELECT n.number, n.number_id, t.tenure_id, t.ordinal, t.subscriber_id, t.channel, t.agent_id, "
        "t.activated_us, t.disconnected_us, t.released_us, t.outstanding_holders, t.override_reason "
        f"{VIOLATIONS_FROM} ORDER BY t.released_us DESC, n.number LIMIT ?",
        (limit,),
    ).fetchall()
    keys = ("number", "number_id", "tenure_id", "ordinal", "subscriber_id", "channel", "agent_id")
    return [
        {
            **dict(zip(keys, r[:7], strict=True)),
            "activated_at": _at(r[7]),
            "disconnected_at": _at(r[8]),
            "released_at": _at(r[9]),
            "outstanding_holders": _holders(r[10]),
            "override_reason": r[11] or "",
        }
        for r in rows
    ]


def _erasure_from(now: datetime, retention_days: int) -> tuple[str, tuple[Any, ...]]:
    cutoff = us(now - timedelta(days=retention_days))
    return (
        "FROM rm_er_subscribers WHERE erased_us IS NULL AND open_tenures = 0 AND held_until_us IS NULL "
        "AND COALESCE(last_end_us, registered_us) <= ?",
        (cutoff,),
    )


def erasures_due(conn: Connection, now: datetime, retention_days: int, limit: int = 200) -> list[dict[str, Any]]:
    """Subscribers due for erasure with their last tenure's end, longest overdue first."""
    where, params = _erasure_from(now, retention_days)
    rows = conn.execute(
        f"SELECT subscriber_id, tenure_count, last_end_us, registered_us {where} "
        "ORDER BY COALESCE(last_end_us, registered_us), subscriber_id LIMIT ?",
        (*params, limit),
    ).fetchall()
    result = []
    for subscriber_id, tenures, last_end, registered in rows:
        since = _at(last_end if last_end is not None else registered) or now
        result.append(
            {
                "subscriber_id": subscriber_id,
                "tenure_count": int(tenures),
                "last_tenure_end": _at(last_end),
                "registered_at": _at(registered),
                "days_overdue": (now - since).days - retention_days,
            }
        )
    return result


def erasures_due_count(conn: Connection, now: datetime, retention_days: int) -> int:
    """How many subscribers are due for erasure (a requested erasure held by the retention period is not)."""
    where, params = _erasure_from(now, retention_days)
    return count(conn, where, params)


HELD_FROM = "FROM rm_er_subscribers WHERE erased_us IS NULL AND held_until_us IS NOT NULL"


def erasures_held(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    """Subscribers whose erasure was requested inside the retention period: their data is restricted and
    the key is destroyed when the hold ends (the server's daily pass or ``scripts.erase_due``), soonest first."""
    rows = conn.execute(
        f"SELECT subscriber_id, tenure_count, last_end_us, held_until_us {HELD_FROM} "
        "ORDER BY held_until_us, subscriber_id LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        {"subscriber_id": r[0], "tenure_count": int(r[1]), "last_tenure_end": _at(r[2]), "held_until": _at(r[3])}
        for r in rows
    ]


# The quarantined number's last tenure, and any ported-out tenure not released: no release will ever ask
# for a ported-out tenure's clearance while the number is served elsewhere, so only this list shows it.
BLOCKED_FROM = (
    "FROM rm_numbers n JOIN rm_tenures t ON t.number_id = n.number_id "
    "WHERE t.outstanding_holders != '[]' AND t.released_us IS NULL AND t.disconnected_us IS NOT NULL "
    "AND ((n.status = 'QUARANTINED' AND t.ordinal = n.tenure_count) OR t.disconnect_reason = 'PORTED_OUT')"
)


def quarantine_blockers(conn: Connection, now: datetime) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Quarantined numbers and ported-out tenures whose clearance is not complete (longest waiting first),
    and per holder: how many numbers it holds back, how many of them past their quarantine, and the longest
    wait in days."""
    rows = conn.execute(
        "SELECT n.number, t.tenure_id, t.disconnected_us, t.quarantine_until_us, t.outstanding_holders, n.status "
        f"{BLOCKED_FROM} ORDER BY t.disconnected_us, n.number"
    ).fetchall()
    numbers: list[dict[str, Any]] = []
    holders: dict[str, dict[str, Any]] = {}
    for number, tenure_id, disconnected, until, outstanding, state in rows:
        disconnected_at, until_at = _at(disconnected), _at(until)
        waiting = (now - disconnected_at).days if disconnected_at else 0
        overdue = until_at is not None and until_at <= now
        item = {
            "number": number,
            "tenure_id": tenure_id,
            "disconnected_at": disconnected_at,
            "quarantine_until": until_at,
            "waiting_on": _holders(outstanding),
            "days_waiting": waiting,
            "quarantine_ended": overdue,
            "state": state,
        }
        numbers.append(item)
        for holder in item["waiting_on"]:
            entry = holders.setdefault(holder, {"numbers": 0, "past_quarantine": 0, "longest_days": 0})
            entry["numbers"] += 1
            entry["past_quarantine"] += int(overdue)
            entry["longest_days"] = max(entry["longest_days"], waiting)
    return numbers, holders


def period(conn: Connection) -> tuple[datetime | None, datetime | None]:
    """The first and last moments the views record (provisioning, activations, ends, releases, checks)."""
    first = conn.execute("SELECT min(provisioned_us) FROM rm_numbers").fetchone()[0]
    lasts = [
        conn.execute(f"SELECT max({column}) FROM {table}").fetchone()[0]
        for table, column in (
            ("rm_numbers", "provisioned_us"),
            ("rm_tenures", "activated_us"),
            ("rm_tenures", "disconnected_us"),
            ("rm_tenures", "released_us"),
            ("rm_cmp_subscribers", "verified_us"),
        )
    ]
    known = [v for v in lasts if v is not None]
    return _at(first), _at(max(known)) if known else None


def _per_day(conn: Connection, table: str, column: str, where: str = "") -> Counter[date]:
    # Grouped by day in SQL (a few thousand rows however large the ledger), by month in Python.
    rows = conn.execute(
        f"SELECT {column} / {DAY_US}, count(*) FROM {table} WHERE {column} IS NOT NULL {where} GROUP BY 1"
    ).fetchall()
    epoch = date(1970, 1, 1)
    return Counter({epoch + timedelta(days=int(day)): int(n) for day, n in rows})


def monthly_trend(conn: Connection) -> list[tuple[str, dict[str, int]]]:
    """Per calendar month (UTC), oldest first: how many of each of ``TREND_SERIES`` happened."""
    sources = {
        "activations": ("rm_tenures", "activated_us", ""),
        "verifications": ("rm_cmp_subscribers", "verified_us", ""),
        "real-name violations": ("rm_cmp_tenures", "activated_us", "AND flagged = 1"),
        "clearance violations": ("rm_tenures", "released_us", "AND violation = 1"),
        "disconnections": ("rm_tenures", "disconnected_us", ""),
        "recycled numbers": ("rm_tenures", "released_us", ""),
    }
    months: dict[str, dict[str, int]] = {}
    for series, (table, column, where) in sources.items():
        for day, n in _per_day(conn, table, column, where).items():
            month = months.setdefault(f"{day:%Y-%m}", dict.fromkeys(TREND_SERIES, 0))
            month[series] += n
    if not months:
        return []
    # Months with nothing still show, so the line does not skip them.
    keys = sorted(months)
    year, month_no = int(keys[0][:4]), int(keys[0][5:])
    filled: list[tuple[str, dict[str, int]]] = []
    while f"{year:04d}-{month_no:02d}" <= keys[-1]:
        key = f"{year:04d}-{month_no:02d}"
        filled.append((key, months.get(key, dict.fromkeys(TREND_SERIES, 0))))
        year, month_no = (year + 1, 1) if month_no == 12 else (year, month_no + 1)
    return filled
