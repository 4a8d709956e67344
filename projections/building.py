"""A batch applied in memory to generations being built on PostgreSQL: each table's rows read once, changed
in Python, written once.

While a generation is ``building`` nothing reads it, so a batch need not send each event's change to the
server as it goes (on PostgreSQL every statement costs the server a parse, a plan and an index lookup: a
rebuild was bound by the server, about 1.4 statements per event). Instead the projector gathers the
batch's events of each such view, reads the rows they touch (one ``SELECT`` per table, keyed by the
numbers, subscribers and tenures the events name), lets the view's ``build`` handlers change those rows in
memory (the last write of a row wins), and writes each table's changed rows once: new rows with one
``COPY`` into the table, changed ones with one ``COPY`` into a temporary table and one ``UPDATE ... FROM``
it, counters with one ``INSERT ... ON CONFLICT`` adding what the batch counted. Rows that carry a keyed
hash get it from their values in memory, as ``seal_rows`` computes it from the stored row.

The rows, their hashes and the position commit in the batch's transaction, as on the live path, so a
rebuild interrupted anywhere resumes from its last commit. A view's ``build`` handlers mirror its
``apply`` handlers (``tests/integration/test_projection_properties.py`` holds the views a rebuild writes
equal to those the live projector writes).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

if TYPE_CHECKING:
    from projections.seal import RowSeal, Sealed


class Stored(NamedTuple):
    """A table a view builds in memory: its key columns, every column in order, the values of a new row's
    columns a handler does not give (the schema's defaults), what selects the rows of a batch (``where``,
    over the batch's ``Keys`` as ``%(numbers)s``, ``%(subscribers)s``, ``%(tenures)s``; None: rows are
    only inserted, never read), the column grouping rows by number (``group``), and whether its
    columns other than the key are counters a batch adds to (``counts``)."""

    table: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    defaults: dict[str, Any]
    where: str | None
    group: str | None = None
    counts: bool = False


class Keys(NamedTuple):
    """What the events of a batch name: numbers and subscribers (their stream ids), and tenures (hex)."""

    numbers: list[str]
    subscribers: list[str]
    tenures: list[str]


class Table:
    """One table's rows in a batch: those read, those inserted and those changed."""

    def __init__(self, spec: Stored) -> None:
        self.spec = spec
        self.rows: dict[Any, dict[str, Any]] = {}
        self.new: dict[Any, dict[str, Any]] = {}
        self.changed: set[Any] = set()
        self.groups: dict[Any, list[Any]] = {}

    def _key(self, row: dict[str, Any]) -> Any:
        key = self.spec.key
        return row[key[0]] if len(key) == 1 else tuple(row[k] for k in key)

    def loaded(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rows as the table holds them (every column in order)."""
        columns = self.spec.columns
        group = self.spec.group
        for values in rows:
            row = dict(zip(columns, values, strict=True))
            key = self._key(row)
            self.rows[key] = row
            if group is not None:
                self.groups.setdefault(row[group], []).append(key)

    def get(self, key: Any) -> dict[str, Any] | None:
        """A row to read (not to change)."""
        return self.rows.get(key)

    def change(self, key: Any) -> dict[str, Any] | None:
        """A row to change, or None when there is none (an UPDATE that finds no row changes nothing)."""
        row = self.rows.get(key)
        if row is not None and key not in self.new:
            self.changed.add(key)
        return row

    def update(self, key: Any, **changes: Any) -> dict[str, Any] | None:
        """``UPDATE ... SET changes WHERE key``: the row changed, or None when there is none."""
        row = self.change(key)
        if row is not None:
            row.update(changes)
        return row

    def insert(self, **values: Any) -> dict[str, Any]:
        """A new row; a key the table holds already fails as the INSERT would."""
        row = {**self.spec.defaults, **values}
        key = self._key(row)
        if key in self.rows:
            raise ValueError(f"a second row with the key of an existing one in {self.spec.table}")
        self.rows[key] = self.new[key] = row
        if self.spec.group is not None:
            self.groups.setdefault(row[self.spec.group], []).append(key)
        return row

    def of(self, group: Any) -> list[dict[str, Any]]:
        """The rows of one group (a number's), in the order read and inserted."""
        return [self.rows[k] for k in self.groups.get(group, ())]

    def count(self, key: tuple[Any, ...], column: str, by: int = 1) -> None:
        """Add to a counter of a row (created with zero counters when the table has none)."""
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = {**self.spec.defaults, **dict(zip(self.spec.key, key, strict=True))}
            self.new[key] = row
        row[column] += by


class Rows:
    """The tables of one view in one batch."""

    def __init__(self, specs: Sequence[Stored]) -> None:
        self.tables = {spec.table: Table(spec) for spec in specs}

    def __getitem__(self, table: str) -> Table:
        return self.tables[table]


def batch_keys(events: Iterable[Any]) -> Keys:
    """The numbers, subscribers and tenures a batch's events name."""
    from ledger.domain.number import Number

    numbers: set[str] = set()
    subscribers: set[str] = set()
    tenures: set[str] = set()
    for event in events:
        if isinstance(event, Number.Event):
            numbers.add(event.originator_id.hex)
        else:
            subscribers.add(event.originator_id.hex)
        tenure = getattr(event, "tenure_id", None)
        if isinstance(tenure, UUID):
            tenures.add(tenure.hex)
        subscriber = getattr(event, "subscriber_id", None)
        if isinstance(subscriber, UUID):
            subscribers.add(subscriber.hex)
    return Keys(sorted(numbers), sorted(subscribers), sorted(tenures))


def build_batch(
    view: Any,
    events: Sequence[tuple[Any, int]],
    keys: Keys,
    cur: Any,
    raw: Any,
    stored_name: Callable[[str], str],
    seal: RowSeal,
) -> None:
    """Apply a view's events of one batch in memory and write the rows they changed. ``view`` is a ``View``
    that names its ``stored`` tables (typed loosely: the views import this module); ``keys`` are what the
    batch's events name; ``cur`` names tables as the generation does (a renaming cursor) and reads; ``raw``
    is the connection's cursor, which copies; ``stored_name`` gives a table's name in the generation."""
    specs = view.stored
    rows = Rows(specs)
    # Arrays as text ('{a,b}': the keys are hex), which psycopg would otherwise write value by value.
    arrays = {name: "{" + ",".join(values) + "}" for name, values in keys._asdict().items()}
    for spec in specs:
        if spec.where is not None:
            select = f"SELECT {', '.join(spec.columns)} FROM {spec.table} WHERE {spec.where}"
            rows[spec.table].loaded(cur.execute(select, arrays).fetchall())
    handlers: dict[type, Callable[..., None]] = {}
    for event, position in events:
        kind = type(event)
        handler = handlers.get(kind)
        if handler is None:
            handler = handlers[kind] = _handler(view, kind)
        handler(view, event, position, rows)
    sealed = {s.table: s for s in view.sealed}
    for spec in specs:
        table = rows[spec.table]
        _write(raw, table, stored_name(spec.table), sealed.get(spec.table), seal)


def by_keys(cur: Any) -> None:
    """Make the transaction's reads and writes find rows by their keys in the indexes: a plan that reads a
    whole table (what the planner chose for a few hundred keys in a table it had seen small, or joining a
    temporary table it has no statistics of) costs the more the further a rebuild has come."""
    cur.execute(
        "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), "
        "set_config('enable_mergejoin', 'off', true), set_config('jit', 'off', true)"
    )


_HANDLERS: dict[tuple[type, type], Callable[..., None]] = {}


def _handler(view: Any, kind: type) -> Callable[..., None]:
    """The view's ``build`` handler of an event class, as a plain function (``singledispatchmethod`` makes
    a new bound dispatcher at every call)."""
    key = (type(view), kind)
    found = _HANDLERS.get(key)
    if found is None:
        _ = view.build  # registers the handlers whose annotations name classes defined after them
        method = next(c.__dict__["build"] for c in type(view).__mro__ if "build" in c.__dict__)
        found = _HANDLERS[key] = method.dispatcher.dispatch(kind)
    return found


def _write(raw: Any, table: Table, name: str, sealed: Sealed | None, seal: RowSeal) -> None:
    spec = table.spec
    if sealed is not None:
        key = seal.key(spec.table)
        columns = sealed.columns
        for k in (*table.changed, *table.new):
            row = table.rows[k]
            row["mac"] = seal.mac(key, tuple([row[c] for c in columns]))
    listed = ", ".join(spec.columns)
    if spec.counts:
        if table.new:
            stage = _stage(raw, name, spec.columns)
            raw.copy(f"COPY {stage} ({listed}) FROM STDIN", _text(spec.columns, table.new.values()))
            counters = [c for c in spec.columns if c not in spec.key]
            raw.execute(
                f"INSERT INTO {name} ({listed}) SELECT {listed} FROM {stage} ON CONFLICT ({', '.join(spec.key)}) "
                f"DO UPDATE SET {', '.join(f'{c}={name}.{c}+excluded.{c}' for c in counters)}"
            )
        return
    if table.new:
        raw.copy(f"COPY {name} ({listed}) FROM STDIN", _text(spec.columns, table.new.values()))
    if table.changed:
        stage = _stage(raw, name, spec.columns)
        raw.copy(f"COPY {stage} ({listed}) FROM STDIN", _text(spec.columns, [table.rows[k] for k in table.changed]))
        others = [c for c in spec.columns if c not in spec.key]
        match = " AND ".join(f"{name}.{k}=s.{k}" for k in spec.key)
        raw.execute(f"UPDATE {name} SET {', '.join(f'{c}=s.{c}' for c in others)} FROM {stage} s WHERE {match}")


def _stage(raw: Any, name: str, columns: Sequence[str]) -> str:
    """A temporary table shaped as ``name`` (no index, emptied at each commit) to copy changed rows into,
    made once per connection (the cursor forgets what it made at a rollback, which may have undone it); its
    name carries the columns' digest, so a table of the same name with other columns gets its own."""
    stage = f"build_{name}_{zlib.crc32(','.join(columns).encode()):08x}"
    if stage not in raw.temporary:
        raw.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {name}) ON COMMIT DELETE ROWS")
        raw.temporary.add(stage)
    return stage


def _text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> bytes:
    """Rows in COPY's text format (NULL as ``\\N``; backslash, tab, newline and carriage return escaped)."""
    values = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    lines = []
    for row in rows:
        fields = []
        for value in values(row):
            if value is None:
                fields.append("\\N")
            elif type(value) is int:
                fields.append(str(value))
            else:
                text = str(value)
                if _SPECIAL.search(text) is not None:
                    text = text.translate(_ESCAPES)
                fields.append(text)
        lines.append("\t".join(fields))
    lines.append("")
    return "\n".join(lines).encode()


_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
