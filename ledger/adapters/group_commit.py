"""Group commit: concurrent commands are saved together in one transaction.

The committer never waits on purpose: while one transaction commits, the commands that arrive queue
up, and the next transaction takes all of them. A lone caller sees no added latency; many callers
share each commit.

Each command is still decided against the state it loaded; only the write is shared. A command is
acknowledged after the transaction that holds its events commits. If the shared transaction fails on
a conflict, every command of the batch is saved on its own, so only the conflicting ones see the
IntegrityError (and are retried by the caller against fresh state). Two commands of one batch that
would write the same stream version go in different transactions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Submission:
    events: list[Any]
    future: Future[list[Any]] = field(default_factory=Future)

    def keys(self) -> set[tuple[Any, int]]:
        return {(e.originator_id, e.originator_version) for e in self.events}


class GroupCommitter:
    """Saves the events of concurrent commands together; ``save`` is the application's save."""

    def __init__(self, save: Callable[..., Sequence[Any]], max_batch: int = 256, max_wait: float = 0.0) -> None:
        self._save = save
        # Told how many commands each transaction saved, on the committing thread (the server's metrics).
        self.committed: Callable[[int], None] = _ignore
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: list[_Submission] = []
        self._ready = threading.Condition()
        self._closed = False
        self.batches = 0
        self.commands = 0
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, events: list[Any]) -> list[Any]:
        """Save these events (with others'); returns their recordings, or raises the save's error."""
        submission = _Submission(events)
        with self._ready:
            if self._closed:
                raise RuntimeError("group committer is closed")
            self._queue.append(submission)
            self._ready.notify()
        return submission.future.result()

    def close(self) -> None:
        """Finish what is queued and stop."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue and self._closed:
                    return
            if self.max_wait:
                time.sleep(self.max_wait)  # optionally let more commands join
            with self._ready:
                batch: list[_Submission] = []
                deferred: list[_Submission] = []
                seen: set[tuple[Any, int]] = set()
                for submission in self._queue[: self.max_batch]:
                    keys = submission.keys()
                    if keys & seen:
                        deferred.append(submission)  # writes a stream version another one here writes
                    else:
                        batch.append(submission)
                        seen |= keys
                self._queue = deferred + self._queue[self.max_batch :]
            self._commit(batch)

    def _commit(self, batch: list[_Submission]) -> None:
        if len(batch) > 1:
            try:
                recordings = self._save(*(e for s in batch for e in s.events))
            except IntegrityError:
                pass  # some command conflicts: save each on its own below
            except Exception as e:  # the store failed: every command of the batch hears it
                for s in batch:
                    s.future.set_exception(e)
                return
            else:
                self.batches += 1
                self.commands += len(batch)
                self.committed(len(batch))
                start = 0
                for s in batch:
                    s.future.set_result(list(recordings[start : start + len(s.events)]))
                    start += len(s.events)
                return
        for s in batch:
            try:
                s.future.set_result(list(self._save(*s.events)))
                self.batches += 1
                self.commands += 1
                self.committed(1)
            except Exception as e:
                s.future.set_exception(e)


def _ignore(_count: int) -> None:
    """No one listens to the commits."""
