"""StreamEvents on the aio edge: a feed reads its batches on the pool and waits for commits on the loop,
so a feed that follows a quiet ledger holds no thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, TypeVar

from ledger.application.feed import FEED_IDLE_SECONDS, Feed

if TYPE_CHECKING:
    from ledger.application.reads import HistoryItem
    from ledger.server.bridge import Blocking

T = TypeVar("T")
# Events read per piece of work on the pool: short pieces, so a unary call queued behind one waits little.
FEED_STEP = 100


class CommitSignal:
    """Wakes coroutines of any loop when this process commits (``app.commit_listeners`` calls it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def arm(self) -> asyncio.Future[None]:
        """A future resolved at the next commit (armed before a read, so no commit falls between)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiting.add((loop, future))
        future.add_done_callback(lambda _f: self._forget(loop, future))
        return future

    def _forget(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        with self._lock:
            self._waiting.discard((loop, future))

    def __call__(self, _position: int = 0) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, set()
        for loop, future in waiting:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AsyncFeed(Feed):
    """``Feed`` read a batch at a time, for a coroutine that waits between batches itself."""

    def converted(self, last: int, convert: Callable[[HistoryItem], T]) -> tuple[int, list[T]]:
        """``batch``, each item converted (on the pool too: a batch's messages are built off the loop)."""
        after, items = self.batch(last, FEED_STEP)
        return after, [convert(item) for item in items]

    async def follow_async(
        self,
        last: int,
        convert: Callable[[HistoryItem], T],
        blocking: Blocking,
        commits: CommitSignal,
        stopping: Callable[[], bool],
        turn: Callable[[], AbstractAsyncContextManager[None]],
    ) -> AsyncIterator[T]:
        """The items after position ``last``, then new ones as they are committed; ends when ``stopping()``
        (the call's task is cancelled when its client goes away). Commits by other processes are found
        by reading again after ``FEED_IDLE_SECONDS`` without a signal."""
        while not stopping():
            signal = commits.arm()
            try:
                async with turn():
                    after, items = await blocking.run(self.converted, last, convert)
                if after == last:
                    await asyncio.wait((signal,), timeout=FEED_IDLE_SECONDS)
                    continue
            finally:
                signal.cancel()
            last = after
            for item in items:
                yield item
