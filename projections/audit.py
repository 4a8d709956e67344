"""The read models checked against the log: each number's rows replayed in memory and compared.

For a chunk of numbers, the stored rows are read in one snapshot of the serving generations, each
number's events up to each view's position are replayed through the same view code into an in-memory
database, and every column of every row keyed by those numbers is compared. A repair rewrites the rows
of the numbers that differ from the replay, under the views' write lock and at the positions they have
then, and raises the generations' revision so that projectors forget what they remember of the rows.
"""

from __future__ import annotations

import functools
import logging
import random
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eventsourcing.utils import get_topic

from ledger.adapters import log_reader
from ledger.domain.number import Number
from projections import generations as gens_
from projections.projector import lock_views
from projections.queries import ReadModels
from projections.seal import RowSeal, seal_rows
from projections.views import ALL_VIEWS, View
from projections.views.base import NumberRows

if TYPE_CHECKING:
    from eventsourcing.persistence import ApplicationRecorder, Mapper

    from projections.db import ViewsDatabase

log = logging.getLogger(__name__)


def audited_views(views: Sequence[type[View]] = ALL_VIEWS) -> tuple[type[View], ...]:
    """The views of the registry that hold rows of numbers (each says which tables, ``View.by_number``)."""
    return tuple(cls for cls in views if cls.by_number)


def number_rows(views: Sequence[type[View]] = ALL_VIEWS) -> tuple[tuple[type[View], NumberRows], ...]:
    """Every table of the registry's views whose rows belong to a number, with its view."""
    return tuple((cls, rows) for cls in views for rows in cls.by_number)


# Taken from the registry once: a view added to ``ALL_VIEWS`` with rows of numbers is audited as it is.
AUDITED_VIEWS = audited_views()
ROWS = tuple(rows for _, rows in number_rows())
CHUNK = 500
MAX_REPORTED = 1000
_PROVISIONED = get_topic(Number.Provisioned)


@dataclass(frozen=True)
class Mismatch:
    """One stored value that differs from the replay."""

    number: str
    field: str
    stored: str
    replayed: str


@dataclass
class AuditReport:
    """What an audit found."""

    numbers_checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    mismatched_numbers: set[str] = field(default_factory=set)
    as_of_position: int = 0
    repaired: int = 0

    @property
    def ok(self) -> bool:
        """True when every audited number's rows equal the replay."""
        return not self.mismatched_numbers


Rows = dict[tuple[str, str], dict[str, Any]]  # (table, row key) -> column -> value


class Auditor:
    """Audits (and repairs) the read models of a ledger."""

    def __init__(self, recorder: ApplicationRecorder, mapper: Mapper, views_db: ViewsDatabase, seal: RowSeal) -> None:
        self.recorder = recorder
        # Checks the keyed hashes of the stored rows, and writes those of the rows a repair rewrites.
        self.seal = seal
        self.log = log_reader(recorder)
        self.mapper = mapper
        self.views_db = views_db
        self.read_models = ReadModels(views_db)

    def all_numbers(self) -> list[str]:
        """Every number the ledger has provisioned (from the log, so a row missing from the views counts)."""
        numbers: list[str] = []
        start = 1
        while True:
            batch = self.recorder.select_notifications(start=start, limit=10_000, topics=[_PROVISIONED])
            if not batch:
                return numbers
            numbers.extend(self.mapper.to_domain_event(n).number for n in batch)  # type: ignore[attr-defined]
            start = batch[-1].id + 1

    def audit(
        self,
        numbers: Sequence[str] | None = None,
        sample: int = 0,
        repair: bool = False,
        seed: int | None = None,
        active: Callable[[], bool] = lambda: True,
    ) -> AuditReport:
        """Audit the numbers given (every number when None, or a random ``sample`` of them); stops between
        chunks once ``active()`` is false (the caller went away)."""
        chosen = list(numbers) if numbers is not None else self.all_numbers()
        if sample and sample < len(chosen):
            chosen = random.Random(seed).sample(chosen, sample)
        report = AuditReport()
        for start in range(0, len(chosen), CHUNK):
            if not active():
                break
            part = chosen[start : start + CHUNK]
            position, found = self.read_models.read(
                [v.name for v in AUDITED_VIEWS], functools.partial(self._compare, numbers=part)
            )
            report.numbers_checked += len(part)
            report.as_of_position = max(report.as_of_position, position)
            bad = sorted({m.number for m in found})
            report.mismatched_numbers.update(bad)
            room = MAX_REPORTED - len(report.mismatches)
            report.mismatches.extend(found[: max(room, 0)])
            if repair and bad:
                report.repaired += self.repair(bad)
        return report

    def _compare(
        self, cur: Any, gens: dict[str, gens_.Generation], numbers: Sequence[str]
    ) -> tuple[int, list[Mismatch]]:
        ids = {Number.create_id(n).hex: n for n in numbers}
        stored = _stored(cur, ids)
        replayed = self._replay(ids, {name: g.position for name, g in gens.items()})
        found: list[Mismatch] = []
        sealed = {spec.table: spec for cls in AUDITED_VIEWS for spec in cls.sealed}
        for key in sorted(stored.keys() | replayed.keys()):
            table = key[0]
            have, want = stored.get(key), replayed.get(key)
            number = _number_of(have or want or {}, ids)
            if have is None or want is None:
                found.append(Mismatch(number, f"{table} row {key[1]}", _text(have), _text(want)))
                continue
            for column in sorted(want):
                if column != "mac" and have.get(column) != want[column]:
                    found.append(Mismatch(number, f"{table}.{column}", _text(have.get(column)), _text(want[column])))
            if table in sealed:  # the keyed hash itself is never shown: it would teach a forger nothing new
                spec = sealed[table]
                values = tuple(have[c] for c in spec.columns)
                if not self.seal.holds(self.seal.key(table), values, have.get("mac")):
                    found.append(Mismatch(number, f"{table}.mac", "does not authenticate", "a valid keyed hash"))
        return min(g.position for g in gens.values()), found

    def _replay(self, ids: dict[str, str], positions: dict[str, int]) -> Rows:
        """The rows the views would hold for these numbers, replayed from the log up to each view's position."""
        from uuid import UUID

        memory = sqlite3.connect(":memory:")
        try:
            views = [cls() for cls in AUDITED_VIEWS]
            cur = memory.cursor()
            for view in views:
                view.start_empty()
                for statement in view.schema:
                    cur.execute(statement)
            events = self.log.read_streams([UUID(i) for i in ids])
            topics = {view.name: view.topics() for view in views}
            for item in events:
                event = None
                for view in views:
                    if item.position <= positions[view.name] and item.stored.topic in topics[view.name]:
                        if event is None:
                            event = self.mapper.to_domain_event(item.stored)
                        view.apply(event, item.position, cur)
            return _stored(memory, ids)
        finally:
            memory.close()

    def repair(self, numbers: Sequence[str]) -> int:
        """Rewrite these numbers' rows from the replay, in one transaction under the views' write lock;
        returns how many numbers were rewritten."""
        ids = {Number.create_id(n).hex: n for n in numbers}
        conn = self.views_db.connect()
        try:
            cur = conn.cursor()
            cur.execute(conn.begin_write)
            try:
                lock_views(cur, [v.name for v in AUDITED_VIEWS], self.views_db.is_postgres)
                found = gens_.read_generations(cur)
                chosen = {cls.name: gens_.serving(found, cls.name, cls.version) for cls in AUDITED_VIEWS}
                named = gens_.RenamedCursor(cur, gens_.renamer((cls, chosen[cls.name]) for cls in AUDITED_VIEWS))
                replayed = self._replay(ids, {name: g.position for name, g in chosen.items()})
                for table, column, kind, _ in ROWS:
                    keys = list(ids) if kind == "id" else list(ids.values())
                    marks = ",".join("?" * len(keys))
                    named.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", keys)
                for (table, _), row in replayed.items():
                    columns = list(row)
                    named.execute(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                        [row[c] for c in columns],
                    )
                for cls in AUDITED_VIEWS:  # the rewritten rows' keyed hashes, in the same transaction
                    seal_rows(named, cls.sealed, list(ids), self.seal, self.views_db.is_postgres)
                for gen in chosen.values():
                    cur.execute("UPDATE rm_generations SET revision = revision + 1 WHERE key=?", (gen.key,))
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        finally:
            conn.close()
        for number in numbers:
            log.warning("read models repaired: the rows of %s were rewritten from its events", self.seal.tag(number))
        return len(numbers)

    def close(self) -> None:
        """Close the views connections."""
        self.read_models.close()


def _stored(cur: Any, ids: dict[str, str]) -> Rows:
    rows: Rows = {}
    for table, column, kind, key in ROWS:
        keys = list(ids) if kind == "id" else list(ids.values())
        marks = ",".join("?" * len(keys))
        result = cur.execute(f"SELECT * FROM {table} WHERE {column} IN ({marks})", keys)
        names = [d[0] for d in result.description]
        for values in result.fetchall():
            row = dict(zip(names, values, strict=True))
            rows[(table, str(row[key]))] = row
    return rows


def _number_of(row: dict[str, Any], ids: dict[str, str]) -> str:
    if "number" in row:
        return str(row["number"])
    return ids.get(str(row.get("number_id")), "")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v!r}" for k, v in value.items()) + "}"
    return str(value)
