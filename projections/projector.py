"""Feeds the read models from the ledger's event log: batched, tracked, exactly once, resumable.

Each batch of events is applied to every view in one SQLite transaction together with the views'
tracking positions, so a crash at any point leaves each view exactly at a batch boundary, and the
next run continues from there. The embedded store has no subscription, so the projector polls the
notification log (in batches), and is woken early when the server in the same process commits.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from projections.db import Cursor, ViewsConnection, ViewsDatabase
from projections.views import ALL_VIEWS, View

if TYPE_CHECKING:
    from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification

log = logging.getLogger(__name__)

# Advisory lock key that serialises projection batches across processes on PostgreSQL.
PROJECTION_LOCK = 0x1ED6E0
TRACKING_SCHEMA = "CREATE TABLE IF NOT EXISTS rm_tracking (view TEXT PRIMARY KEY, position BIGINT NOT NULL)"
# The schema version each view's tables were built with (views created before versions were kept are version 1).
VERSIONS_SCHEMA = "CREATE TABLE IF NOT EXISTS rm_versions (view TEXT PRIMARY KEY, version BIGINT NOT NULL)"


def tracked_positions(conn: ViewsConnection) -> dict[str, int]:
    """Each view's last applied position (empty before the views were created)."""
    try:
        return {str(k): int(v) for k, v in conn.execute("SELECT view, position FROM rm_tracking").fetchall()}
    except Exception:  # no tracking table yet (SQLite and PostgreSQL raise different errors): nothing applied
        return {}


class Projector:
    """Applies the event log to a set of views."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        mapper: Mapper,
        views_db: ViewsDatabase,
        views: Sequence[View] | None = None,
        batch_size: int = 2000,
    ) -> None:
        self.recorder = recorder
        self.mapper = mapper
        self.views_db = views_db
        self.views: list[View] = list(views) if views is not None else [cls() for cls in ALL_VIEWS]
        self.batch_size = batch_size
        self.conn = views_db.connect()
        self._topics: dict[str, list[View]] = {}
        for view in self.views:
            for topic in view.topics():
                self._topics.setdefault(topic, []).append(view)
        self._applied = threading.Condition()
        self.wake = threading.Event()
        self.create_tables()
        self.positions = self._load_positions()

    def create_tables(self) -> None:
        """Create missing tables and tracking rows; a view built with an older schema version is dropped
        and rebuilt from position 0 (by the catch-up that follows)."""
        with self._transaction() as cur:
            self._lock_views(cur)
            cur.execute(TRACKING_SCHEMA)
            cur.execute(VERSIONS_SCHEMA)
            tracked = {str(k) for (k,) in cur.execute("SELECT view FROM rm_tracking").fetchall()}
            built = {str(k): int(v) for k, v in cur.execute("SELECT view, version FROM rm_versions").fetchall()}
            for view in self.views:
                version = built.get(view.name, 1 if view.name in tracked else view.version)
                if version != view.version:
                    log.warning(
                        "view %s was built with schema version %d, this release has %d: rebuilding it from position 0",
                        view.name,
                        version,
                        view.version,
                    )
                    for table in view.tables:
                        cur.execute(f"DROP TABLE IF EXISTS {table}")
                    cur.execute("UPDATE rm_tracking SET position=0 WHERE view=?", (view.name,))
                for statement in view.schema:
                    cur.execute(self._dialect(statement))
                cur.execute("INSERT INTO rm_tracking VALUES (?, 0) ON CONFLICT DO NOTHING", (view.name,))
                cur.execute(
                    "INSERT INTO rm_versions VALUES (?, ?) ON CONFLICT (view) DO UPDATE SET version=excluded.version",
                    (view.name, view.version),
                )

    def _load_positions(self) -> dict[str, int]:
        known = tracked_positions(self.conn)
        return {view.name: known.get(view.name, 0) for view in self.views}

    @property
    def position(self) -> int:
        """The position every view has applied."""
        return min(self.positions.values()) if self.positions else 0

    def run_once(self) -> int:
        """Apply the next batch; returns how many events were read (0 when caught up).

        Safe with several projectors on the same views (one per server process, say): the batch
        transaction takes the views' write lock first (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
        PostgreSQL) and reads the tracking positions inside it, so no event is applied twice."""
        if self._caught_up_cheaply():
            return 0
        with self._transaction() as cur:
            self._lock_views(cur)
            fresh = {str(k): int(v) for k, v in cur.execute("SELECT view, position FROM rm_tracking").fetchall()}
            positions = {view.name: fresh.get(view.name, 0) for view in self.views}
            for view in self.views:
                if positions[view.name] != self.positions.get(view.name):
                    view.forget()  # another projector applied events to it since this one did
                if positions[view.name] == 0:
                    view.start_empty()
            start = min(positions.values()) + 1
            notifications = self.recorder.select_notifications(start=start, limit=self.batch_size)
            last = notifications[-1].id if notifications else start - 1
            self._apply(notifications, positions, cur)
            for view in self.views:
                if positions[view.name] < last:
                    cur.execute("UPDATE rm_tracking SET position=? WHERE view=?", (last, view.name))
                    positions[view.name] = last
        with self._applied:
            self.positions = positions
            self._applied.notify_all()
        return len(notifications)

    def _dialect(self, statement: str) -> str:
        # Views write SQLite's DDL; PostgreSQL tables have no rowid to leave out.
        return statement.replace(" WITHOUT ROWID", "") if self.views_db.is_postgres else statement

    def _apply(self, notifications: Sequence[Notification], positions: dict[str, int], cur: Cursor) -> None:
        for n in notifications:
            interested = self._topics.get(n.topic)
            if not interested:
                continue
            event = None
            for view in interested:
                if n.id <= positions[view.name]:
                    continue  # this view already has it (it was rebuilt, or another projector ran ahead)
                if event is None:
                    event = self.mapper.to_domain_event(n)
                view.apply(event, n.id, cur)

    def _lock_views(self, cur: Cursor) -> None:
        # On PostgreSQL, one advisory lock per view (in a fixed order, so no deadlock): workers of different
        # views run in parallel, workers of the same view take turns. SQLite's BEGIN IMMEDIATE serialises all.
        if self.views_db.is_postgres:
            for name in sorted(v.name for v in self.views):
                cur.execute("SELECT pg_advisory_xact_lock(?, ?)", (PROJECTION_LOCK, zlib.crc32(name.encode()) >> 1))

    def _caught_up_cheaply(self) -> bool:
        # Avoid taking the write lock when there is nothing new (the common case when idle).
        head = self.recorder.max_notification_id() or 0
        return self.position >= head and self._load_positions() == self.positions

    def catch_up(self) -> int:
        """Apply batches until the log is exhausted; returns the events read."""
        total = 0
        while True:
            n = self.run_once()
            if n == 0:
                return total
            total += n

    def run(self, stop: threading.Event, poll_interval: float = 0.2) -> None:
        """Follow the log until ``stop`` is set; errors are logged and retried, never a silent stall."""
        backoff = poll_interval
        while not stop.is_set():
            try:
                if self.run_once() == 0:
                    self.wake.wait(poll_interval)
                    self.wake.clear()
                backoff = poll_interval
            except Exception:
                log.exception("projection batch failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                if self.conn.broken():
                    try:
                        self.conn.close()
                        self.conn = self.views_db.connect()
                    except Exception:
                        log.warning("views database still unavailable")

    def listen(self, conninfo: str, channel: str, stop: threading.Event) -> None:
        """Wake the projector on PostgreSQL NOTIFY (sent by every insert); reconnect when the connection
        drops, so a lost connection costs latency (polling continues meanwhile), never a silent stall."""
        import psycopg

        backoff = 0.2
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{channel}"')
                    backoff = 0.2
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.wake.set()
            except psycopg.Error as e:
                log.warning("LISTEN %s failed (%s); reconnecting in %.1fs", channel, e, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until every view has applied ``position`` (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        with self._applied:
            while self.position < position:
                self.wake.set()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._applied.wait(min(remaining, 0.05))
        return True

    def rebuild(self, names: Sequence[str] | None = None) -> int:
        """Drop and refill views (all, or those named) from position 0; returns events read."""
        chosen = [v for v in self.views if names is None or v.name in names]
        with self._transaction() as cur:
            self._lock_views(cur)
            for view in chosen:
                for table in view.tables:
                    cur.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in view.schema:
                    cur.execute(self._dialect(statement))
                cur.execute("UPDATE rm_tracking SET position=0 WHERE view=?", (view.name,))
        with self._applied:
            for view in chosen:
                self.positions[view.name] = 0
        return self.catch_up()

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
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
