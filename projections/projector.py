"""Feeds the read models from the ledger's event log: batched, tracked, exactly once, resumable.

Each batch of events is applied to every view in one transaction together with the views' positions
(in ``rm_generations``), so a crash at any point leaves each view exactly at a batch boundary, and the
next run continues from there. The embedded store has no subscription, so the projector polls the
notification log (in batches), and is woken early when the server in the same process commits.

A projector follows, for each view, the generation that serves (see ``projections.generations``); when
none can (first start, or a release with a new schema version) it builds one and makes it serve once it
has caught up with the ledger. ``rebuild`` fills a new generation beside the serving one and switches
to it, in one transaction, once it has caught up with the serving one. Each batch checks the ledger's
chain digest at the views' position, so views never follow a ledger they were not built from.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.adapters import log_reader
from ledger.domain.errors import EventUndecodable
from projections import generations as gens_
from projections.building import Keys, batch_keys, build_batch, by_keys
from projections.db import Cursor, ViewsDatabase
from projections.errors import ReadModelMismatch
from projections.following import Following
from projections.generations import BUILDING, MISMATCH, READY, Generation, RenamedCursor
from projections.legacy import migrate_legacy
from projections.seal import RowSeal, seal_rows
from projections.switching import Switching, _now_us
from projections.views import ALL_VIEWS, View

if TYPE_CHECKING:
    from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification

log = logging.getLogger(__name__)

# Events per batch the rebuild tools ask for while every view is built in memory (measured: 21,522 against
# 13,239 events/s with 2,000, rebuilding 356,367 events).
BUILD_BATCH = 10_000

# Advisory lock key that serialises projection batches across processes on PostgreSQL.
PROJECTION_LOCK = 0x1ED6E0

# The stored events that do not decode, as the projectors met them (a fact of the log, not of a generation:
# no generation renames it). The views apply nothing of such an event's stream from it on, so no row is
# built on a gap; a check of a number named here answers DATA_LOSS (EVENT_UNDECODABLE) with the position.
# ``number`` is the number whose stream it is, when the numbers view knew the stream before it.
DAMAGED_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rm_damaged (
        position BIGINT PRIMARY KEY, stream_id TEXT NOT NULL, version BIGINT NOT NULL, number TEXT)""",
    "CREATE INDEX IF NOT EXISTS rm_damaged_number ON rm_damaged (number)",
)


def _hex(digest: bytes | None) -> str | None:
    return digest.hex() if digest else None


def lock_views(cur: Cursor, names: Sequence[str], is_postgres: bool) -> None:
    """Take the write lock of some views for the current transaction. On PostgreSQL, one advisory lock per
    view (in a fixed order, so no deadlock): workers of different views run in parallel, workers of the
    same view take turns. SQLite's ``BEGIN IMMEDIATE`` has already serialised every writer."""
    if is_postgres:
        for name in sorted(names):
            cur.execute("SELECT pg_advisory_xact_lock(?, ?)", (PROJECTION_LOCK, zlib.crc32(name.encode()) >> 1))


class Projector(Following, Switching):
    """Applies the event log to a set of views."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        mapper: Mapper,
        views_db: ViewsDatabase,
        seal: RowSeal,
        views: Sequence[View] | None = None,
        batch_size: int = 2000,
        build_batch_size: int | None = None,
    ) -> None:
        self.recorder = recorder
        # Writes the keyed hash of every row answers read (see ``projections.seal``).
        self.seal = seal
        self.mapper = mapper
        self.log = log_reader(recorder)
        self.views_db = views_db
        self.views: list[View] = list(views) if views is not None else [cls() for cls in ALL_VIEWS]
        self.batch_size = batch_size
        # Events per batch while every view is built in memory (``projections.building``; None: ``batch_size``):
        # a row changed by many events of a batch is written once, and each table costs a few statements a
        # batch. The rebuild tools ask for ``BUILD_BATCH``.
        self.build_batch_size = build_batch_size
        self.conn = views_db.connect()
        self._topics: dict[str, list[View]] = {}
        for view in self.views:
            for topic in view.topics():
                self._topics.setdefault(topic, []).append(view)
        self._applied = threading.Condition()
        self.wake = threading.Event()
        # Called with the position every view has applied, after each batch that advanced.
        self.listeners: list[Callable[[int], None]] = []
        # The generation each view writes, and its signature after this projector's last batch.
        self.targets: dict[str, Generation] = {}
        self._seen: dict[str, tuple[str, int, int, str]] = {}
        # Views being rebuilt beside the serving generation: the key of the generation being filled.
        self._rebuilding: dict[str, str] = {}
        self._renamers: dict[str, gens_.Renamer] = {}
        # The highest position this process's ledger reported committed (``committed``): while the views
        # are behind it, a wake-up skips the idle check and goes straight to the batch.
        self._committed = 0
        # The log's undecodable events (stream -> first position), as of this projector's last batch; read
        # again whenever another writer moved a generation (it may have met one) or a batch rolled back.
        self._damaged_streams: dict[str, int] | None = None
        self.setup()

    def committed(self, position: int) -> None:
        """The ledger in this process committed up to ``position``: wake the loop."""
        if position > self._committed:
            self._committed = position
        self.wake.set()

    # -- generations ---------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the control table (taking over the views of a release before generations) and each
        view's generation to follow, creating one where none exists."""
        with self._transaction() as cur:
            self._lock_views(cur)
            cur.execute(gens_.CONTROL_SCHEMA)
            for statement in DAMAGED_SCHEMA:
                cur.execute(statement)
            migrate_legacy(cur, self.views_db.is_postgres, _now_us())
            found = gens_.read_generations(cur)
            try:
                self.targets = self._select(cur, found)
                # A generation made on an empty ledger has caught up already: it serves from the start.
                self._promote(cur, found, self.targets, True)
            except ReadModelMismatch as e:
                log.error("projection stopped: %s", e)
                self.targets = {}
        self._seen = {}

    def create_tables(self) -> None:
        """Kept for callers of earlier releases: the same as ``setup``."""
        self.setup()

    def _select(self, cur: Cursor, found: list[Generation]) -> dict[str, Generation]:
        """Each view's generation to write now (under the views' lock)."""
        targets: dict[str, Generation] = {}
        for view in self.views:
            key = self._rebuilding.get(view.name)
            if key is not None:
                target = next((g for g in found if g.key == key), None)
                if target is None or target.state not in (BUILDING, READY):
                    raise RuntimeError(f"the {view.name} generation being rebuilt ({key}) was removed")
                if target.state == READY:
                    del self._rebuilding[view.name]  # another rebuilder finished it
                targets[view.name] = target
                continue
            target = gens_.of_view(found, view.name, view.version, READY) or gens_.of_view(
                found, view.name, view.version, BUILDING
            )
            if target is None:
                if gens_.of_view(found, view.name, view.version, MISMATCH) is not None:
                    raise ReadModelMismatch(
                        f"the {view.name} read model does not match this ledger; rebuild it with "
                        "`ledger project --rebuild`"
                    )
                target = self._create(cur, found, view)
                found.append(target)
            targets[view.name] = target
        return targets

    def _cursor(self, cur: Any, view: View, gen: Generation) -> Any:
        if not gen.generation:
            return cur
        rename = self._renamers.get(gen.key)
        if rename is None:
            rename = self._renamers[gen.key] = gens_.renamer([(view, gen)])
        return RenamedCursor(cur, rename)

    def _check_log(
        self, targets: dict[str, Generation], last: int
    ) -> tuple[list[tuple[Generation, str]], dict[int, bytes]]:
        """Generations whose position and digest do not match this ledger's chain, and the chain's
        digests at the generations' positions and at ``last`` (the batch's last event), read at once."""
        at = {g.position for g in targets.values() if g.position > 0}
        if last > 0:
            at.add(last)
        hashes = self.log.chain_hashes(sorted(at)) if at else {}
        bad = []
        for gen in targets.values():
            if gen.position <= 0:
                continue
            digest = hashes.get(gen.position)
            if digest is None:
                bad.append((gen, f"the ledger has no event at the views' position {gen.position}"))
            elif gen.digest is not None and gen.digest != digest.hex():
                bad.append((gen, f"the ledger's chain digest at position {gen.position} differs from the views'"))
        return bad, hashes

    # -- batches -------------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The position every view has applied."""
        return min((g.position for g in self.targets.values()), default=0)

    @property
    def positions(self) -> dict[str, int]:
        """Each view's applied position."""
        return {name: g.position for name, g in self.targets.items()}

    def run_once(self) -> int:
        """Apply the next batch; returns how many events were read (0 when caught up).

        Safe with several projectors on the same views (one per server process, say): the batch
        transaction takes the views' write lock first (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
        PostgreSQL) and reads the positions inside it, so no event is applied twice."""
        if self._caught_up_cheaply():
            return 0
        before = self.position
        mismatched: list[tuple[Generation, str]] = []
        with self._transaction() as cur:
            self._lock_views(cur)
            found = gens_.read_generations(cur)
            targets = self._select(cur, found)
            in_memory = self._in_memory(cur, targets)
            limit = self.batch_size
            if self.build_batch_size and len(in_memory) == len(self.views):
                limit = self.build_batch_size
            start = min(g.position for g in targets.values()) + 1
            notifications: Sequence[Notification] = self.recorder.select_notifications(start=start, limit=limit)
            last = notifications[-1].id if notifications else 0
            mismatched, hashes = self._check_log(targets, last)
            if mismatched:
                for gen, _ in mismatched:
                    gens_.set_state(cur, gen.key, MISMATCH, _now_us())
                notifications = ()
            else:
                self._batch(cur, found, targets, hashes, notifications, in_memory, limit)
        # Only now, after the commit: a waiter woken by the new position must find the rows in the views.
        self.targets = targets
        self._seen = {name: g.signature for name, g in targets.items()}
        if mismatched:
            self.targets = {}
            gen, problem = mismatched[0]
            raise ReadModelMismatch(
                f"the {gen.view} read model (generation {gen.generation}) does not match this ledger: {problem}; "
                "checks answer READ_MODEL_MISMATCH until it is rebuilt with `ledger project --rebuild`"
            )
        with self._applied:
            self._applied.notify_all()
        if self.position != before:  # events applied, or another projector's generation now followed
            for listener in self.listeners:
                listener(self.position)
        return len(notifications)

    def _batch(
        self,
        cur: Cursor,
        found: list[Generation],
        targets: dict[str, Generation],
        hashes: dict[int, bytes],
        notifications: Sequence[Notification],
        in_memory: dict[str, Callable[..., None]],
        limit: int,
    ) -> None:
        moved = False
        for view in self.views:
            gen = targets[view.name]
            if self._seen.get(view.name) != gen.signature:
                moved = True
                view.forget()  # another projector (or a repair) changed its rows since this one did
                if gen.position == 0:
                    view.start_empty()
        last = notifications[-1].id if notifications else min(g.position for g in targets.values())
        cursors = {view.name: self._cursor(cur, view, targets[view.name]) for view in self.views}
        if moved or self._damaged_streams is None:
            self._damaged_streams = {
                str(r[0]): int(r[1])
                for r in cur.execute("SELECT stream_id, MIN(position) FROM rm_damaged GROUP BY stream_id").fetchall()
            }
        touched = self._apply(notifications, targets, cursors, self._damaged_streams, in_memory)
        for view in self.views:
            if touched.get(view.name):  # the hashes of the rows this batch wrote, in its transaction
                ids = [i.hex if isinstance(i, UUID) else UUID(i).hex for i in touched[view.name]]
                seal_rows(cursors[view.name], view.sealed, ids, self.seal, self.views_db.is_postgres)
        for view in self.views:
            gen = targets[view.name]
            # Each generation records the chain digest at its position (one first recorded by a release
            # before digests is taken as it is now).
            if gen.position < last:
                gen = replace(gen, position=last, digest=_hex(hashes.get(last)))
            elif gen.digest is None and gen.position > 0:
                gen = replace(gen, digest=_hex(hashes.get(gen.position)))
            else:
                continue
            gens_.set_position(cur, gen.key, gen.position, gen.digest)
            targets[view.name] = gen
        self._promote(cur, found, targets, len(notifications) < limit)
        self._drop_retired(cur, found)
        if self.views_db.is_postgres and self._only_building(found, targets):
            # Nothing reads what this batch wrote: a crash may lose its commit, and the rebuild then resumes
            # from the position the last durable commit recorded (rows and position commit together). The
            # commit that makes a generation serve is durable, and with it everything written before it.
            cur.execute("SET LOCAL synchronous_commit TO OFF")

    @staticmethod
    def _only_building(found: list[Generation], targets: dict[str, Generation]) -> bool:
        """Whether every generation this batch moved is still being built (none serves, none was promoted)."""
        before = {g.key: g for g in found}
        moved = [g for g in targets.values() if before.get(g.key) != g]
        return bool(moved) and all(g.state == BUILDING for g in moved)

    def _in_memory(self, cur: Any, targets: dict[str, Generation]) -> dict[str, Callable[..., None]]:
        """The views this batch builds in memory (``projections.building``): on PostgreSQL, those whose
        generation is being built (nothing reads it) and that name their stored tables; for each, what
        applies its events of the batch and writes its rows."""
        if not self.views_db.is_postgres:
            return {}
        chosen: dict[str, Callable[..., None]] = {}
        for view in self.views:
            gen = targets[view.name]
            if gen.state == BUILDING and view.stored:
                chosen[view.name] = partial(self._build, view, gen, cur)
        if chosen:
            by_keys(cur)
        return chosen

    def _build(self, view: View, gen: Generation, cur: Any, events: Sequence[tuple[Any, int]], keys: Keys) -> None:
        view.forget()  # what it remembers for ``apply`` does not follow rows written here
        named = self._cursor(cur, view, gen)
        build_batch(view, events, keys, named, cur, lambda table: table + gen.suffix, self.seal)

    def _dialect(self, statement: str) -> str:
        # Views write SQLite's DDL; PostgreSQL tables have no rowid to leave out.
        return statement.replace(" WITHOUT ROWID", "") if self.views_db.is_postgres else statement

    def _apply(
        self,
        notifications: Sequence[Notification],
        targets: dict[str, Generation],
        cursors: dict[str, Any],
        damaged: dict[str, int],
        in_memory: dict[str, Callable[..., None]] | None = None,
    ) -> dict[str, set[UUID | str]]:
        """Apply the events, each stream up to its first event that does not decode (``damaged``: stream ->
        position); returns, for each view with sealed rows, the streams (numbers) it wrote. The views in
        ``in_memory`` get their events after the others, together (they seal their own rows); an event that
        does not decode is then recorded after them, so its number is found among the rows they wrote."""
        positions = {name: g.position for name, g in targets.items()}
        held: dict[str, list[tuple[Any, int]]] = {name: [] for name in in_memory or ()}
        decoded: list[Any] = []  # the events held, each once
        undecodable: list[EventUndecodable] = []
        touched: dict[str, set[UUID | str]] = {view.name: set() for view in self.views if view.sealed}
        for n in notifications:
            interested = self._topics.get(n.topic)
            if not interested:
                continue
            if n.id > damaged.get(str(n.originator_id), n.id):
                continue  # a stream is applied up to its first event that does not decode, never past it
            event = None
            for view in interested:
                if n.id <= positions[view.name]:
                    continue  # this view already has it (another projector ran ahead)
                if event is None:
                    try:
                        event = self.mapper.to_domain_event(n)
                    except EventUndecodable as e:
                        if held:
                            undecodable.append(e)
                        else:
                            self._damaged(e, cursors)
                        damaged.setdefault(str(n.originator_id), n.id)
                        break
                pending = held.get(view.name)
                if pending is not None:
                    pending.append((event, n.id))
                    if not decoded or decoded[-1] is not event:
                        decoded.append(event)
                    continue
                view.apply(event, n.id, cursors[view.name])
                if view.sealed:
                    touched[view.name].add(n.originator_id)
        if decoded and in_memory:
            keys = batch_keys(decoded)
            for name, events in held.items():
                if events:
                    in_memory[name](events, keys)
        for error in undecodable:
            self._damaged(error, cursors)
        return touched

    def _damaged(self, e: EventUndecodable, cursors: dict[str, Any]) -> None:
        """Record an event that does not decode (so the views go on, and its number answers DATA_LOSS)."""
        log.error(
            "the stored event at position %d (stream %s, version %d) does not decode: its stream is not "
            "applied from there on, and checks of its number answer DATA_LOSS",
            e.position,
            e.stream_id,
            e.version,
        )
        numbers = cursors.get("numbers")
        found = None
        if numbers is not None:
            found = numbers.execute(
                "SELECT number FROM rm_numbers WHERE number_id = ?", (UUID(e.stream_id).hex,)
            ).fetchone()
        cur = next(iter(cursors.values()))
        cur.execute(
            "INSERT INTO rm_damaged (position, stream_id, version, number) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (position) DO UPDATE SET number = COALESCE(rm_damaged.number, excluded.number)",
            (e.position, e.stream_id, e.version, found[0] if found else None),
        )

    def _lock_views(self, cur: Cursor) -> None:
        lock_views(cur, [v.name for v in self.views], self.views_db.is_postgres)

    def _caught_up_cheaply(self) -> bool:
        # Avoid taking the write lock when there is nothing new (the common case when idle).
        if self._rebuilding or not self.targets or self._committed > self.position:
            return False
        head = self.recorder.max_notification_id() or 0
        if self.position != head:
            return False  # behind, or beyond a ledger that is shorter than the views (checked in the batch)
        found = {g.key: g for g in gens_.read_generations(self.conn)}
        return all(
            (gen := found.get(target.key)) is not None and gen.signature == self._seen.get(name)
            for name, target in self.targets.items()
        ) and all(g.state != BUILDING for g in self.targets.values())

    def close(self) -> None:
        """Close the views database."""
        self.conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        cur = self.conn.cursor()
        cur.execute(self.conn.begin_write)
        try:
            yield cur
        except BaseException:
            for view in self.views:
                view.forget()  # it may remember changes that are being rolled back
            self._seen = {}
            self._damaged_streams = None
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
