"""Generations of the read models: a view is rebuilt beside the one that serves, and replaces it at once.

Each view's tables exist in one or more generations. Generation 0 has the plain table names
(``rm_numbers``); generation N > 0 has them with a suffix (``rm_numbers__g3``). The control table
``rm_generations`` holds one row per generation: the view, its generation number, the schema version it
was built with, its state, the position it has applied, the chain digest of the ledger at that position,
and a revision that a repair raises (so that projectors drop what they remember of rows).

States:
- ``building``: being filled from position 0; nothing reads it.
- ``ready``: complete and following the ledger; readers of the same schema version read the highest one.
- ``mismatch``: found not to match the ledger it claims to follow (a restored or another ledger);
  nothing reads it; an operator rebuilds.
- ``retired``: replaced by a newer generation; its tables are dropped after a short grace.

A reader reads ``rm_generations`` and the rows in one snapshot, so the switch from one generation to the
next (one UPDATE of two rows) is seen by every reader and every process at once, and no reader ever sees a
generation that is still being filled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from projections.errors import ReadModelMismatch, ReadModelRebuilding

if TYPE_CHECKING:
    from projections.views import View

BUILDING, READY, MISMATCH, RETIRED = "building", "ready", "mismatch", "retired"
# Retired tables are dropped this long after the switch (a reader that chose them just before the switch
# may still be reading).
RETIRED_GRACE_US = 5_000_000

CONTROL_SCHEMA = """CREATE TABLE IF NOT EXISTS rm_generations (
    key TEXT PRIMARY KEY, view TEXT NOT NULL, generation BIGINT NOT NULL, version BIGINT NOT NULL,
    state TEXT NOT NULL, position BIGINT NOT NULL DEFAULT 0, digest TEXT, revision BIGINT NOT NULL DEFAULT 0,
    changed_us BIGINT NOT NULL)"""
_COLUMNS = "view, generation, version, state, position, digest, revision, changed_us"


@dataclass(frozen=True)
class Generation:
    """One generation of one view, as ``rm_generations`` holds it."""

    view: str
    generation: int
    version: int
    state: str
    position: int
    digest: str | None
    revision: int
    changed_us: int

    @property
    def key(self) -> str:
        """The row's key: the view's name, with the suffix of its tables."""
        return self.view + self.suffix

    @property
    def suffix(self) -> str:
        """What this generation adds to its tables' names."""
        return f"__g{self.generation}" if self.generation else ""

    @property
    def signature(self) -> tuple[str, int, int, str]:
        """What changes when another writer changed the generation's rows."""
        return (self.key, self.position, self.revision, self.state)


def read_generations(cur: Any) -> list[Generation]:
    """Every generation row (an empty list before the control table exists is the caller's concern)."""
    rows = cur.execute(f"SELECT {_COLUMNS} FROM rm_generations").fetchall()
    return [Generation(str(r[0]), int(r[1]), int(r[2]), str(r[3]), int(r[4]), r[5], int(r[6]), int(r[7])) for r in rows]


def of_view(gens: Iterable[Generation], view: str, version: int, state: str) -> Generation | None:
    """The highest generation of a view in a state, built with a schema version."""
    found = [g for g in gens if g.view == view and g.version == version and g.state == state]
    return max(found, key=lambda g: g.generation) if found else None


def serving(gens: Sequence[Generation], view: str, version: int) -> Generation:
    """The generation a reader of this schema version answers from, or the reason there is none:
    ``ReadModelRebuilding`` (with the progress of the one being built) or ``ReadModelMismatch``."""
    ready = of_view(gens, view, version, READY)
    if ready is not None:
        return ready
    building = of_view(gens, view, version, BUILDING)
    if building is not None:
        raise ReadModelRebuilding(view, building.position)
    if of_view(gens, view, version, MISMATCH) is not None:
        raise ReadModelMismatch(
            f"the {view} read model does not match the ledger it was built from (a restored or another "
            "ledger); rebuild it with `ledger project --rebuild`"
        )
    raise ReadModelRebuilding(view, 0)


def insert(cur: Any, gen: Generation) -> None:
    """Record a new generation."""
    cur.execute(
        f"INSERT INTO rm_generations (key, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (gen.key, gen.view, gen.generation, gen.version, gen.state, gen.position, gen.digest, gen.revision,
         gen.changed_us),
    )  # fmt: skip


def set_state(cur: Any, key: str, state: str, now_us: int) -> None:
    """Change one generation's state."""
    cur.execute("UPDATE rm_generations SET state=?, changed_us=? WHERE key=?", (state, now_us, key))


def set_position(cur: Any, key: str, position: int, digest: str | None) -> None:
    """Record how far a generation has applied the ledger, and the ledger's digest there."""
    cur.execute("UPDATE rm_generations SET position=?, digest=? WHERE key=?", (position, digest, key))


def table_names(view: type[View] | View) -> tuple[str, ...]:
    """The tables and indexes a view's schema creates (what a generation suffix applies to)."""
    names = list(view.tables)
    for statement in view.schema:
        match = re.match(r"\s*CREATE\s+INDEX\s+IF\s+NOT\s+EXISTS\s+(\w+)", statement, re.IGNORECASE)
        if match:
            names.append(match.group(1))
    return tuple(names)


_NAME = re.compile(r"\brm_[a-z0-9_]+\b")


class Renamer:
    """Rewrites the statements views and queries write with plain table names to a generation's names.
    Statements are constant texts, so each is rewritten once and remembered."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = {k: v for k, v in mapping.items() if k != v}
        self._done: dict[str, str] = {}

    def __call__(self, sql: str) -> str:
        if not self.mapping:
            return sql
        done = self._done.get(sql)
        if done is None:
            if len(self._done) > 10_000:
                self._done.clear()
            done = self._done[sql] = _NAME.sub(lambda m: self.mapping.get(m.group(0), m.group(0)), sql)
        return done


def renamer(targets: Iterable[tuple[type[View] | View, Generation]]) -> Renamer:
    """A renamer for some views, each in one generation."""
    mapping: dict[str, str] = {}
    for view, gen in targets:
        for name in table_names(view):
            mapping[name] = name + gen.suffix
    return Renamer(mapping)


class RenamedCursor:
    """A cursor whose statements name tables as the generation it writes or reads."""

    def __init__(self, cursor: Any, rename: Callable[[str], str]) -> None:
        self.cursor = cursor
        self.rename = rename

    def execute(self, sql: str, params: Any = ()) -> Any:
        """Run a statement written with plain table names."""
        return self.cursor.execute(self.rename(sql), params)


def drop_tables(cur: Any, view: type[View] | View, gen: Generation) -> None:
    """Drop a generation's tables (indexes go with them)."""
    for table in view.tables:
        cur.execute(f"DROP TABLE IF EXISTS {table}{gen.suffix}")


def serving_tables(cur: Any) -> dict[str, str]:
    """Each table's name in the generation that serves this release (plain name -> name in the store),
    for tools and tests that read the views' tables directly."""
    from projections.views import ALL_VIEWS

    found = read_generations(cur)
    names: dict[str, str] = {}
    for cls in ALL_VIEWS:
        gen = of_view(found, cls.name, cls.version, READY)
        if gen is not None:
            names.update({table: table + gen.suffix for table in cls.tables})
    return names
