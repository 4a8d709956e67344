"""The read models read: one snapshot of the serving generations per read, and the rows the answers stand
on (recycling checks, clearance, SIM swaps), each authenticated before anything is decided from it; also
the numbers' release and summary counts. People and compliance questions are ``projections.people``."""

from __future__ import annotations

import hmac
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ledger.domain.errors import EventUndecodable
from ledger.domain.number import Number
from ledger.domain.rules import tenure_clearance
from projections import generations as gens_
from projections.db import ViewsConnection, ViewsDatabase
from projections.errors import ReadModelMismatch, ReadModelRebuilding
from projections.recycling import UNTRUSTED, NumberRow, TenureRow
from projections.seal import RowSeal
from projections.simswap import UNTRUSTED as UNTRUSTED_SIM
from projections.simswap import SimSwapRow
from projections.views import ALL_VIEWS, us
from projections.views.numbers import CHECK_COLUMNS, NUMBER_COLUMNS, TENURE_COLUMNS, CheckRow
from projections.views.simswaps import SWAP_COLUMNS

if TYPE_CHECKING:
    from ledger.adapters import EventLog

log = logging.getLogger(__name__)
T = TypeVar("T")
VIEW_CLASSES = {cls.name: cls for cls in ALL_VIEWS}

CHUNK = 500


_CHECK_COLUMNS = ", ".join(f"c.{c}" for c in (*CHECK_COLUMNS, "mac"))
_SEALED = len(CHECK_COLUMNS)
# A last column, after the check row's columns and its hash: how many stored events of the ledger do not
# decode (the same in every row, computed once per statement; 0 but on a damaged ledger, see
# projections.projector.DAMAGED_SCHEMA). Only when it is not 0 are the numbers asked looked up there.
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


class ReadModels:
    """Read-only access to the views database; one connection per thread.

    The answers (checks, clearance, SIM swaps) are read only with ``seal`` and ``log``: every row they read
    must carry its keyed hash, and a number without a row must have no stream in the ledger's log at or
    before the view's position (a deleted row); otherwise that number is answered READ_MODEL_MISMATCH.
    Reports and tools that count rows need neither."""

    def __init__(self, views_db: ViewsDatabase, seal: RowSeal | None = None, log: EventLog | None = None) -> None:
        self.views_db = views_db
        self.seal = seal
        self.log = log
        self._local = threading.local()
        self._renamers: dict[tuple[tuple[str, int], ...], gens_.Renamer] = {}
        # Rows already reported (table, tag, position): each is logged once, not at every read of it.
        self._reported: set[tuple[str, str, int]] = set()

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
                        raise ReadModelRebuilding(views[0], 0) from None
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
        """Number rows with their tenures, for many numbers at once, read in one snapshot. Raises
        ``ReadModelMismatch`` when a row fails its keyed hash, a tenure row is missing, or a number the
        view should hold has no row."""

        def work(cur: Any, chosen: dict[str, gens_.Generation]) -> dict[str, NumberRow]:
            gen = chosen["numbers"]
            found = self._numbers(cur, numbers, gen)
            missing = self._recorded([n for n in numbers if n not in found], gen.position)
            if missing:
                self._untrusted("numbers", "rm_numbers" + gen.suffix, missing, gen.position, "is missing")
                raise _mismatch()
            return found

        return self.read(("numbers",), work)

    def _numbers(self, conn: Any, numbers: Sequence[str], gen: gens_.Generation) -> dict[str, NumberRow]:
        seal, _ = self._answering()
        number_key, tenure_key = seal.key("rm_numbers"), seal.key("rm_tenures")
        ids = {Number.create_id(n).hex: n for n in numbers}
        found: dict[str, NumberRow] = {}
        keys = list(ids)
        for i in range(0, len(keys), CHUNK):
            chunk = keys[i : i + CHUNK]
            refuse_damaged(conn, [ids[k] for k in chunk])
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT {', '.join(NUMBER_COLUMNS)}, mac FROM rm_numbers WHERE number_id IN ({marks})", chunk
            ).fetchall()
            bad = [ids.get(r[0], r[1]) for r in rows if not seal.holds(number_key, tuple(r[:-1]), r[-1])]
            if bad:
                self._untrusted("numbers", "rm_numbers" + gen.suffix, bad, gen.position, "fails its keyed hash")
                raise _mismatch()
            counts = {r[0]: r[7] for r in rows}
            by_id = {r[0]: NumberRow(r[1], r[2], r[3], []) for r in rows}
            if by_id:
                present = list(by_id)
                tenure_marks = ",".join("?" * len(present))
                tenure_rows = conn.execute(
                    f"SELECT {', '.join(TENURE_COLUMNS)}, mac FROM rm_tenures WHERE number_id IN ({tenure_marks}) "
                    "ORDER BY number_id, ordinal",
                    present,
                ).fetchall()
                ordinals: dict[str, list[int]] = {nid: [] for nid in present}
                for t in tenure_rows:
                    if not seal.holds(tenure_key, tuple(t[:-1]), t[-1]):
                        self._untrusted(
                            "numbers", "rm_tenures" + gen.suffix, [ids[t[1]]], gen.position, "fails its keyed hash"
                        )
                        raise _mismatch()
                    ordinals[t[1]].append(t[2])
                    by_id[t[1]].tenures.append(
                        TenureRow(
                            tenure_id=t[0],
                            subscriber_id=t[3],
                            activated_us=t[7],
                            disconnected_us=t[8],
                            quarantine_until_us=t[10],
                            required_holders=_list(t[11]),
                            outstanding_holders=_list(t[12]),
                            confirmations=_list(t[13]),
                            released_us=t[14],
                            override_reason=t[15] or "",
                            violation=bool(t[16]),
                            ported_to=t[17] or "",
                            recipient_disconnected_us=t[18],
                        )
                    )
                # The number row counts its tenures: a tenure row deleted (or added) is found.
                short = [ids[nid] for nid, seen in ordinals.items() if seen != list(range(1, counts[nid] + 1))]
                if short:
                    self._untrusted("numbers", "rm_tenures" + gen.suffix, short, gen.position, "is missing")
                    raise _mismatch()
            for nid, row in by_id.items():
                found[ids[nid]] = row
        return found

    def _answering(self) -> tuple[RowSeal, EventLog]:
        """The row key and the log, without which no answer is read."""
        if self.seal is None or self.log is None:
            raise RuntimeError("answers are read only with the views' row key and the ledger's log")
        return self.seal, self.log

    def _recorded(self, numbers: Sequence[str], position: int) -> list[str]:
        """Those of these numbers (which have no row in a view at ``position``) whose stream the log began at or
        before that position: their rows were deleted. One indexed lookup for them all, and one for each found."""
        if not numbers:
            return []
        _, events = self._answering()
        ids = {Number.create_id(n): n for n in numbers}
        found = events.existing(list(ids))
        return [ids[i] for i in found if (events.position_of(i, 1) or position + 1) <= position]

    def _untrusted(self, view: str, table: str, numbers: Sequence[str], position: int, what: str) -> None:
        """Log rows found edited or deleted behind the server's back: the table and a keyed tag of each row's
        number (never the number itself), once per row and position."""
        seal, _ = self._answering()
        if len(self._reported) > 10_000:
            self._reported.clear()  # bounded memory; a row still wrong is reported again
        for number in numbers:
            tag = seal.tag(number)
            if (table, tag, position) in self._reported:
                continue
            self._reported.add((table, tag, position))
            log.error(
                "read model row %s in %s (view %s, at position %d) %s: its number is answered READ_MODEL_MISMATCH "
                "until `ledger audit-views --repair` rewrites it",
                tag,
                table,
                view,
                position,
                what,
            )

    def check_rows(self, numbers: Sequence[str]) -> tuple[int, list[CheckRow | None]]:
        """The applied position and each number's check row (None where unknown), in the order given,
        read in one snapshot. A row that fails its keyed hash, and a missing row of a number the view
        should hold, is ``UNTRUSTED`` (its answer: READ_MODEL_MISMATCH). A number whose stream has an event
        that does not decode has no answer: EventUndecodable (the first such number's)."""
        sql = _CHECK_ROWS_PG if self.views_db.is_postgres else _CHECK_ROWS_SQLITE
        param = orjson.dumps(numbers).decode()
        seal, _ = self._answering()
        dumps, same = orjson.dumps, hmac.compare_digest

        def work(cur: Any, chosen: dict[str, gens_.Generation]) -> tuple[int, list[CheckRow | None]]:
            gen = chosen["numbers"]
            copy = seal.key("rm_checks").copy
            new = tuple.__new__  # a CheckRow of the values hashed, without namedtuple's length check
            rows: list[CheckRow | None] = []
            append = rows.append
            absent: list[int] = []
            bad: list[str] = []
            fetched = cur.execute(sql, (param,)).fetchall()
            if fetched and fetched[0][_SEALED + 1]:
                for i in range(0, len(numbers), CHUNK):
                    refuse_damaged(cur, numbers[i : i + CHUNK])
                _refuse_unnamed(cur, [n for n, r in zip(numbers, fetched, strict=True) if r[0] is None])
            # The hot path of every check: ``RowSeal.holds`` written out (one keyed hash per row).
            for r in fetched:
                if r[0] is None:
                    absent.append(len(rows))
                    append(None)
                    continue
                values = r[:_SEALED]
                h = copy()
                h.update(dumps(values))
                mac = r[_SEALED]
                if mac is None or not same(h.hexdigest(), mac):
                    bad.append(r[0])
                    append(UNTRUSTED)
                else:
                    append(new(CheckRow, values))
            if bad:
                self._untrusted("numbers", "rm_checks" + gen.suffix, bad, gen.position, "fails its keyed hash")
            if absent:
                missing = set(self._recorded([numbers[i] for i in absent], gen.position))
                if missing:
                    self._untrusted("numbers", "rm_checks" + gen.suffix, sorted(missing), gen.position, "is missing")
                    for i in absent:
                        if numbers[i] in missing:
                            rows[i] = UNTRUSTED
            return gen.position, rows

        return self.read(("numbers",), work)

    def sim_swap_rows(self, numbers: Sequence[str]) -> tuple[int, dict[str, SimSwapRow]]:
        """The sim_swaps view's position and the rows of those numbers it knows, in one snapshot. A row that
        fails its keyed hash, and a missing row of a number the view should hold, is ``UNTRUSTED``."""
        seal, _ = self._answering()

        def work(cur: Any, chosen: dict[str, gens_.Generation]) -> tuple[int, dict[str, SimSwapRow]]:
            gen = chosen["sim_swaps"]
            table = "rm_swap_numbers" + gen.suffix
            key = seal.key("rm_swap_numbers")
            found: dict[str, SimSwapRow] = {}
            bad: list[str] = []
            unique = list(dict.fromkeys(numbers))
            for i in range(0, len(unique), CHUNK):
                chunk = unique[i : i + CHUNK]
                # By the rows' key, the stream id each number's own (the number column has no index: read
                # by it, every answer scanned the whole table).
                rows = cur.execute(
                    f"SELECT {', '.join(SWAP_COLUMNS)}, mac FROM rm_swap_numbers "
                    f"WHERE number_id IN ({','.join('?' * len(chunk))})",
                    [Number.create_id(n).hex for n in chunk],
                ).fetchall()
                for r in rows:
                    if seal.holds(key, tuple(r[:-1]), r[-1]):
                        found[r[1]] = SimSwapRow(r[2], r[3], r[4], r[5])
                    else:
                        bad.append(r[1])
                        found[r[1]] = UNTRUSTED_SIM
                refuse_damaged(cur, chunk)
            if bad:
                self._untrusted("sim_swaps", table, bad, gen.position, "fails its keyed hash")
            missing = self._recorded([n for n in unique if n not in found], gen.position)
            if missing:
                self._untrusted("sim_swaps", table, missing, gen.position, "is missing")
                found.update((n, UNTRUSTED_SIM) for n in missing)
            return gen.position, found

        return self.read(("sim_swaps",), work)

    def fetch(self, view: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one statement over one view's serving generation (for reports and tools: nothing
        read this way is authenticated)."""
        return self.read((view,), lambda cur, _: cur.execute(sql, params).fetchall())

    def due_for_release(self, now: datetime, limit: int = 10_000, after: str = "") -> list[tuple[str, str]]:
        """(number, tenure_id) of quarantined numbers whose quarantine ended and whose clearance is
        complete, ordered by number, after ``after`` (for paging)."""
        rows = self.fetch(
            "numbers",
            "SELECT n.number, t.tenure_id FROM rm_numbers n JOIN rm_tenures t ON t.number_id = n.number_id "
            "AND t.ordinal = n.tenure_count WHERE n.status = 'QUARANTINED' AND t.quarantine_until_us <= ? "
            "AND t.outstanding_holders = '[]' AND n.number > ? ORDER BY n.number LIMIT ?",
            (us(now), after, limit),
        )
        return [(r[0], r[1]) for r in rows]

    def quarantine_summary(self, now: datetime) -> dict[str, int]:
        """Quarantined numbers by what holds them back."""
        rows = self.fetch(
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
        return dict(self.fetch("numbers", "SELECT status, count(*) FROM rm_numbers GROUP BY status"))

    def clearance_counts(self) -> dict[str, int]:
        """Closed tenures by clearance."""
        rows = self.fetch(
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


def refuse_damaged(cur: Any, numbers: Sequence[str]) -> None:
    """Raise EventUndecodable when one of these numbers (at most a few hundred) has a stored event that does
    not decode (``rm_damaged``, see projections.projector): its rows stop before it, so nothing is answered
    from them."""
    row = cur.execute(
        "SELECT position, stream_id, version FROM rm_damaged "
        f"WHERE number IN ({','.join('?' * len(numbers))}) ORDER BY position LIMIT 1",
        list(numbers),
    ).fetchone()
    if row is not None:
        raise EventUndecodable(int(row[0]), str(row[1]), int(row[2]))


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
            raise EventUndecodable(int(found[1]), str(found[0]), int(found[2]))


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


def _mismatch() -> ReadModelMismatch:
    return ReadModelMismatch(
        "a read model row of this number does not authenticate (edited or deleted behind the server's back); "
        "it is answered again once `ledger audit-views --repair` rewrites it"
    )


def _list(text: str | None) -> list[Any]:
    return [] if not text else list(orjson.loads(text))
