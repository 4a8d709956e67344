"""What the server knows of the ledger's head and of the read models' progress, and the waits on them.

One background thread (per server) refreshes the ledger's head and, when the read models are fed by
another process or read from a replica, their position; a projector in this process reports its batches
itself. Waiters (``min_position``) sleep on one condition, or (on the aio edge) on a future of the loop, and are
woken by that progress, by the client going away (the call's task is cancelled), or by the server
stopping: nothing a waiter does costs a query, or a thread, of its own.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from projections.errors import ReadModelMismatch, ReadModelRebuilding

log = logging.getLogger(__name__)


class Progress:
    """The ledger head and read-model position this server knows; waits on the read model."""

    def __init__(
        self,
        head: Callable[[], int],
        views_position: Callable[[], int],
        local: bool = False,
        on_serving: Callable[[bool], None] | None = None,
        interval: float = 0.1,
    ) -> None:
        self._head_source = head
        self._views_source = views_position
        # With a projector in this process (reading the same views), its batches report the position.
        self.local = local
        self._on_serving = on_serving
        self.interval = interval
        self.head = 0
        self.views_position = 0
        self.serving: bool | None = None
        self.stopping = threading.Event()
        self._changed = threading.Condition()
        self._waiters = 0
        # (head, when first seen) pairs, heads increasing: how long an unapplied position has existed.
        self._seen: list[tuple[int, float]] = []
        self._thread: threading.Thread | None = None
        # Coroutines waiting: (position, loop, future) each, woken from whichever thread moves the position.
        self._async: set[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self.wake_projector: Callable[[], None] | None = None

    def start(self) -> None:
        """Start refreshing in the background (a daemon thread that ends with ``stop``)."""
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Wake every waiter (they answer at once) and end the background thread."""
        self.stopping.set()
        with self._changed:
            self._changed.notify_all()
            self._wake_async()
        if self._thread is not None:
            self._thread.join(2)

    def applied(self, position: int) -> None:
        """A projector in this process applied up to ``position``."""
        with self._changed:
            self.views_position = position
            self._changed.notify_all()
            self._wake_async()
        self._note_head(position)

    def refresh(self) -> None:
        """Read the head and (unless a local projector reports it) the read models' position now."""
        try:
            self._note_head(self._head_source())
        except Exception as e:  # the store is down: the last head known stands
            log.debug("ledger head unavailable: %s", e)
        try:
            position = self._views_source()
        except (ReadModelRebuilding, ReadModelMismatch):
            self._set_serving(False)
            return
        except Exception as e:  # views database down: checks fail on their own, clearly
            log.debug("read models unavailable: %s", e)
            return
        self._set_serving(True)
        if self.local:
            return  # the projector in this process reports its position itself
        with self._changed:
            if position != self.views_position:
                self.views_position = position
                self._changed.notify_all()
                self._wake_async()

    def refresh_head(self) -> int:
        """Read the ledger's head now; returns it."""
        self._note_head(self._head_source())
        return self.head

    def _note_head(self, head: int) -> None:
        with self._changed:
            if head > self.head:
                self.head = head
                self._seen.append((head, time.monotonic()))
                if len(self._seen) > 4096:
                    del self._seen[: len(self._seen) - 2048]

    def _set_serving(self, serving: bool) -> None:
        if serving != self.serving:
            self.serving = serving
            if self._on_serving is not None:
                self._on_serving(serving)

    def lag_seconds(self, as_of: int) -> float:
        """How long the ledger has held an event the answer at ``as_of`` does not reflect (0 when none)."""
        with self._changed:
            if as_of >= self.head:
                return 0.0
            i = bisect.bisect_right(self._seen, (as_of, float("inf")))
            first = self._seen[i][1] if i < len(self._seen) else time.monotonic()
        return max(0.0, time.monotonic() - first)

    async def wait_async(self, position: int, timeout: float) -> bool:
        """Wait until the read model has applied ``position`` (False after ``timeout``), holding no thread; a
        cancelled call (client gone, deadline passed) stops waiting at once, and so does a stopping server
        (False)."""
        if self.views_position >= position:
            return True
        loop = asyncio.get_running_loop()
        entry = (position, loop, loop.create_future())
        with self._changed:
            self._async.add(entry)
            self._waiters += 1
        try:
            if self.wake_projector is not None:
                self.wake_projector()
            if self.views_position < position and not self.stopping.is_set():
                await asyncio.wait((entry[2],), timeout=timeout)
        finally:
            with self._changed:
                self._async.discard(entry)
                self._waiters -= 1
        return self.views_position >= position

    def _wake_async(self) -> None:
        """Wake the coroutines whose position is applied (all when stopping); called holding ``_changed``."""
        stopping = self.stopping.is_set()
        for position, loop, future in self._async:
            if stopping or position <= self.views_position:
                with contextlib.suppress(RuntimeError):  # that loop is closed: its calls are over
                    loop.call_soon_threadsafe(_resolve, future)

    def _run(self) -> None:
        last_full = 0.0
        while not self.stopping.is_set():
            # The position is polled often only while somebody waits for it (and no local projector reports
            # it); the head every ``interval``, the health twice a second.
            waiting = self._waiters > 0 and not self.local
            self.stopping.wait(0.02 if waiting else self.interval)
            if self._async and self.wake_projector is not None:
                self.wake_projector()  # a projector that slept through a commit catches up for the waiters
            now = time.monotonic()
            if waiting or now - last_full >= 0.5:
                self.refresh()
                last_full = now
            else:
                try:
                    self._note_head(self._head_source())
                except Exception as e:
                    log.debug("ledger head unavailable: %s", e)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
