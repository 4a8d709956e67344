"""Questions answered from the read models: recycling checks, clearance, compliance, erasure, release."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import orjson

from ledger.domain import errors
from ledger.domain.number import Number
from ledger.domain.rules import tenure_clearance
from projections import generations as gens_
from projections.db import ViewsConnection, ViewsDatabase
from projections.people import PeopleQueries, refuse_damaged
from projections.recycling import (  # the decision's home; imported from here by earlier callers
    NO_DATA,
    CheckAnswer,
    CheckRow,
    Decision,
    NumberRow,
    TenureRow,
    day_bounds,
    decide,
)
from projections.views import ALL_VIEWS, us

__all__ = [
    "NO_DATA",
    "CheckAnswer",
    "CheckRow",
    "Decision",
    "NumberRow",
    "ReadModels",
    "TenureRow",
    "day_bounds",
    "decide",
]

T = TypeVar("T")
VIEW_CLASSES = {cls.name: cls for cls in ALL_VIEWS}

CHUNK = 500


_CHECK_COLUMNS = "c.number, c.provisioned_us, c.current_activated_us, c.last_disconnected_us, c.closed, c.ported_out_us"
# A seventh column, after the check row's six: how many stored events of the ledger do not decode (the same
# in every row, computed once per statement; 0 but on a damaged ledger, see projections.projector.DAMAGED_SCHEMA).
# Only when it is not 0 are the numbers asked looked up there. The decision reads the first six.
_DAMAGED_COUNT = "(SELECT COUNT(*) FROM rm_damaged)"
# One row per number asked, in the order asked. The numbers come as one JSON text on both databases
# (on PostgreSQL a text[] parameter cost psycopg a quarter of a BatchCheck's time to adapt, element by
# element; one string is adapted at once and orjson writes it in C).
_CHECK_ROWS_SQLITE = (
    f"SELECT {_CHECK_COLUMNS}, {_DAMAGED_COUNT} FROM json_each(?) j LEFT JOIN rm_checks c ON c.number = j.value "
    "ORDER BY j.key"
)
_CHECK_ROWS_PG = (
    f"SELECT {_CHECK_COLUMNS}, {_DAMAGED_COUNT} FROM json_array_elements_text(?::json) WITH ORDINALITY AS "
    "j(value, ord) LEFT JOIN rm_checks c ON c.number = j.value ORDER BY j.ord"
)


class ReadModels(PeopleQueries):
    """Read-only access to the views database; one connection per thread."""

    def __init__(self, views_db: ViewsDatabase) -> None:
        self.views_db = views_db
        self._local = threading.local()
        self._renamers: dict[tuple[tuple[str, int], ...], gens_.Renamer] = {}

    def _conn(self) -> ViewsConnection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.broken():
            conn.close()
            conn = None
        if conn is None:
            conn = self.views_db.connect(readonly=True)
            self._local.conn = conn
        return conn

    def _fresh_conn(self) -> ViewsConnection:
        """This thread's connection in a new read transaction. A connection a database restart cut is only
        found dead when used: it is replaced, once, before the caller's work runs."""
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.execute(conn.begin_read)
                return conn
            except Exception as e:
                if attempt == 2 or not conn.lost(e):
                    raise
                conn.close()
                self._local.conn = None
        raise AssertionError("unreachable")

    def read(self, views: Sequence[str], work: Callable[[Any, dict[str, gens_.Generation]], T]) -> T:
        """Run ``work(cursor, generations)`` in one read snapshot of the generations that serve ``views``;
        the cursor takes statements written with the plain table names. Raises ``ReadModelRebuilding`` or
        ``ReadModelMismatch`` when a view has no generation that can serve."""
        for attempt in (1, 2):
            conn = self._fresh_conn()
            try:
                try:
                    found = gens_.read_generations(conn)
                except Exception as e:
                    if _missing_table(e):  # no views yet (nothing projected, or a release before generations)
                        raise errors.ReadModelRebuilding(views[0], 0) from None
                    raise
                chosen = {name: gens_.serving(found, name, VIEW_CLASSES[name].version) for name in views}
                result = work(gens_.RenamedCursor(conn, self._renamer(chosen)), chosen)
            except Exception as e:
                _end(conn, "ROLLBACK")
                if attempt == 1 and _missing_table(e):
                    continue  # a generation retired after this snapshot chose it was dropped: choose again
                raise
            _end(conn, "COMMIT")
            return result
        raise AssertionError("unreachable")

    def _renamer(self, chosen: dict[str, gens_.Generation]) -> gens_.Renamer:
        key = tuple(sorted((name, g.generation) for name, g in chosen.items()))
        found = self._renamers.get(key)
        if found is None:
            found = self._renamers[key] = gens_.renamer((VIEW_CLASSES[n], g) for n, g in chosen.items())
        return found

    def generations(self) -> list[gens_.Generation]:
        """Every generation of every view, as the control table holds them (empty before the first)."""
        conn = self._conn()
        try:
            return gens_.read_generations(conn)
        except Exception as e:
            if _missing_table(e):
                return []
            raise

    def position(self, views: Sequence[str] = tuple(VIEW_CLASSES)) -> int:
        """The position every view named has applied, in the generation that serves it."""
        return self.read(views, lambda _cur, chosen: min(g.position for g in chosen.values()))

    def numbers(self, numbers: Sequence[str]) -> dict[str, NumberRow]:
        """Number rows with their tenures, for many numbers at once, read in one snapshot."""
        return self.read(("numbers",), lambda cur, _: self._numbers(cur, numbers))

    def _numbers(self, conn: Any, numbers: Sequence[str]) -> dict[str, NumberRow]:
        ids = {Number.create_id(n).hex: n for n in numbers}
        found: dict[str, NumberRow] = {}
        keys = list(ids)
        for i in range(0, len(keys), CHUNK):
            chunk = keys[i : i + CHUNK]
            refuse_damaged(conn, [ids[k] for k in chunk])
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT number_id, number, status, provisioned_us FROM rm_numbers WHERE number_id IN ({marks})",
                chunk,
            ).fetchall()
            by_id = {r[0]: NumberRow(r[1], r[2], r[3], []) for r in rows}
            if by_id:
                present = list(by_id)
                tenure_marks = ",".join("?" * len(present))
                tenure_rows = conn.execute(
                    "SELECT number_id, tenure_id, subscriber_id, activated_us, disconnected_us, "
                    "quarantine_until_us, required_holders, outstanding_holders, confirmations, released_us, "
                    "override_reason, violation, ported_to, recipient_disconnected_us FROM rm_tenures "
                    f"WHERE number_id IN ({tenure_marks}) "
                    "ORDER BY number_id, ordinal",
                    present,
                ).fetchall()
                for t in tenure_rows:
                    by_id[t[0]].tenures.append(
                        TenureRow(
                            tenure_id=t[1],
                            subscriber_id=t[2],
                            activated_us=t[3],
                            disconnected_us=t[4],
                            quarantine_until_us=t[5],
                            required_holders=_list(t[6]),
                            outstanding_holders=_list(t[7]),
                            confirmations=_list(t[8]),
                            released_us=t[9],
                            override_reason=t[10] or "",
                            violation=bool(t[11]),
                            ported_to=t[12] or "",
                            recipient_disconnected_us=t[13],
                        )
                    )
            for nid, row in by_id.items():
                found[ids[nid]] = row
        return found

    def check_rows(self, numbers: Sequence[str]) -> tuple[int, list[CheckRow | None]]:
        """The applied position and each number's check row (None where unknown), in the order given,
        read in one snapshot. A number whose stream has an event that does not decode has no answer:
        EventUndecodable (the first such number's)."""
        sql = _CHECK_ROWS_PG if self.views_db.is_postgres else _CHECK_ROWS_SQLITE
        param = orjson.dumps(numbers).decode()

        def work(cur: Any, chosen: dict[str, gens_.Generation]) -> tuple[int, list[CheckRow | None]]:
            rows = cur.execute(sql, (param,)).fetchall()
            if rows and rows[0][6]:
                for i in range(0, len(numbers), CHUNK):
                    refuse_damaged(cur, numbers[i : i + CHUNK])
                _refuse_unnamed(cur, [n for n, r in zip(numbers, rows, strict=True) if r[0] is None])
            return chosen["numbers"].position, [None if r[0] is None else r for r in rows]

        return self.read(("numbers",), work)

    def check(self, queries: Sequence[tuple[str, date]], zone: ZoneInfo) -> list[CheckAnswer]:
        """Answer recycling checks in the order asked."""
        position, rows = self.check_rows([n for n, _ in queries])
        bounds: dict[date, tuple[int, int]] = {}
        answers = []
        for (number, since), row in zip(queries, rows, strict=True):
            day = bounds.get(since) or bounds.setdefault(since, day_bounds(since, zone))
            answers.append(CheckAnswer(number, *decide(row, day), position))
        return answers

    def _fetch(self, view: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one statement over one view's serving generation."""
        return self.read((view,), lambda cur, _: cur.execute(sql, params).fetchall())

    def due_for_release(self, now: datetime, limit: int = 10_000, after: str = "") -> list[tuple[str, str]]:
        """(number, tenure_id) of quarantined numbers whose quarantine ended and whose clearance is
        complete, ordered by number, after ``after`` (for paging)."""
        rows = self._fetch(
            "numbers",
            "SELECT n.number, t.tenure_id FROM rm_numbers n JOIN rm_tenures t ON t.number_id = n.number_id "
            "AND t.ordinal = n.tenure_count WHERE n.status = 'QUARANTINED' AND t.quarantine_until_us <= ? "
            "AND t.outstanding_holders = '[]' AND n.number > ? ORDER BY n.number LIMIT ?",
            (us(now), after, limit),
        )
        return [(r[0], r[1]) for r in rows]

    def quarantine_summary(self, now: datetime) -> dict[str, int]:
        """Quarantined numbers by what holds them back."""
        rows = self._fetch(
            "numbers",
            "SELECT CASE WHEN t.quarantine_until_us > ? THEN 'in_quarantine' "
            "WHEN t.outstanding_holders != '[]' THEN 'clearance_pending' ELSE 'due_for_release' END, count(*) "
            "FROM rm_numbers n JOIN rm_tenures t ON t.number_id = n.number_id AND t.ordinal = n.tenure_count "
            "WHERE n.status = 'QUARANTINED' GROUP BY 1",
            (us(now),),
        )
        return {"in_quarantine": 0, "clearance_pending": 0, "due_for_release": 0, **dict(rows)}

    def status_counts(self) -> dict[str, int]:
        """Numbers by lifecycle state."""
        return dict(self._fetch("numbers", "SELECT status, count(*) FROM rm_numbers GROUP BY status"))

    def clearance_counts(self) -> dict[str, int]:
        """Closed tenures by clearance."""
        rows = self._fetch(
            "numbers",
            "SELECT violation, CASE WHEN outstanding_holders = '[]' THEN 0 ELSE 1 END, count(*) FROM rm_tenures "
            "WHERE disconnected_us IS NOT NULL GROUP BY 1, 2",
        )
        counts = {"CLEARED": 0, "PENDING": 0, "VIOLATION": 0}
        for violation, outstanding, count in rows:  # the rule itself is the domain's, applied once here
            counts[tenure_clearance(False, bool(violation), bool(outstanding)).value] += int(count)
        return counts

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _refuse_unnamed(cur: Any, unknown: Sequence[str]) -> None:
    """Raise EventUndecodable for a number the views do not know because its first event does not decode
    (recorded in rm_damaged with its stream but no number): it is not unknown, its records are damaged."""
    if not unknown:
        return
    rows = cur.execute("SELECT stream_id, position, version FROM rm_damaged WHERE number IS NULL").fetchall()
    unnamed = {str(r[0]): r for r in rows}
    for number in unknown:
        found = unnamed.get(str(Number.create_id(number)))
        if found is not None:
            raise errors.EventUndecodable(int(found[1]), str(found[0]), int(found[2]))


def _missing_table(exc: BaseException) -> bool:
    """Whether a read failed because a table is not there (no views yet, or a generation just dropped)."""
    if isinstance(exc, sqlite3.OperationalError):
        return "no such table" in str(exc)
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName))


def _end(conn: ViewsConnection, statement: str) -> None:
    try:
        conn.execute(statement)
    except Exception:
        if statement == "COMMIT":
            raise
        # ending a failed read on a lost connection: the connection is replaced on next use


def _list(text: str | None) -> list[Any]:
    return [] if not text else list(orjson.loads(text))
