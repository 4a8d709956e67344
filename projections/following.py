"""The projector's loop: follow the log until stopped, wake on PostgreSQL NOTIFY, let callers wait for a
position. Errors are logged and retried with a back-off, never a silent stall; a read model found not to
match the ledger stops the loop (logged once) until an operator rebuilds it."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from projections.errors import ReadModelMismatch
from projections.generations import READY

if TYPE_CHECKING:
    from projections.db import ViewsConnection, ViewsDatabase
    from projections.generations import Generation

log = logging.getLogger("projections.projector")


class Following:
    """What a projector does over time, given ``run_once`` (one batch)."""

    conn: ViewsConnection
    views_db: ViewsDatabase
    wake: threading.Event
    _applied: threading.Condition
    _rebuilding: dict[str, str]
    targets: dict[str, Generation]
    batch_size: int
    # The highest position this process's ledger reported committed.
    _committed: int

    def run_once(self) -> int:
        """Apply the next batch; returns how many events were read."""
        raise NotImplementedError

    @property
    def position(self) -> int:
        """The position every view has applied."""
        raise NotImplementedError

    def catch_up(self) -> int:
        """Apply batches until the log is exhausted (and any rebuild has switched); returns the events read."""
        total = 0
        while True:
            n = self.run_once()
            total += n
            if n == 0 and not self._rebuilding and all(g.state == READY for g in self.targets.values()):
                return total

    def run(self, stop: threading.Event, poll_interval: float = 0.2) -> None:
        """Follow the log until ``stop`` is set; errors are logged and retried, never a silent stall."""
        backoff = poll_interval
        mismatch_logged = False
        while not stop.is_set():
            try:
                read = self.run_once()
                # A batch shorter than a full one read the log to its end: unless this process has committed
                # since, wait for the next wake-up (a commit here, NOTIFY, a waiter) or poll, rather than
                # read the head again at once.
                if read == 0 or (read < self.batch_size and self._committed <= self.position):
                    self.wake.wait(poll_interval)
                    self.wake.clear()
                backoff = poll_interval
                mismatch_logged = False
            except ReadModelMismatch as e:
                if not mismatch_logged:
                    log.error("projection stopped: %s", e)
                    mismatch_logged = True
                stop.wait(1.0)
            except Exception as e:
                lost = self.conn.lost(e)
                # A connection a restart cut is replaced at once: the first retry is immediate.
                wait = 0.0 if lost and backoff == poll_interval else backoff
                log.exception("projection batch failed; retrying in %.1fs", wait)
                stop.wait(wait)
                backoff = min(backoff * 2, 10.0)
                if lost:
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
