"""The key jobs: erasure epochs that end on time, and the pass that completes erasures whose retention
period has ended (``scripts.erase_due`` and, once a day, the process that runs the projections).

They use the application (loading subscribers, recording completed erasures) and the vault below it, so
they live here, above ``ledger.keys``; the wiring starts them explicitly (``bootstrap.start_projections``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from ledger.domain import errors
from ledger.keys.rotation import Rotation, end_epoch

if TYPE_CHECKING:
    from ledger.application.app import LedgerApplication
    from ledger.policy import Policy

log = logging.getLogger("ledger.keys")
DAY_SECONDS = 86400.0


@dataclass
class ErasurePass:
    """What a pass over held erasures found and did."""

    due: list[UUID] = field(default_factory=list)
    erased: int = 0
    already_done: int = 0
    dropped: int = 0


def erase_due(
    app: LedgerApplication, actor: str, dry_run: bool = False, tick: Callable[[], None] | None = None
) -> ErasurePass:
    """Complete every held erasure whose retention period has ended (each recorded as an event by
    ``actor``); idempotent. ``dry_run`` only lists them."""
    now_us = int(app.clock.now().timestamp() * 1_000_000)
    result = ErasurePass()
    for subscriber_id, _due in app.vault.store.held_erasures(due_by_us=now_us):
        try:
            subscriber = app.get_subscriber(subscriber_id)
        except errors.SubscriberNotFound:
            subscriber = None
        if subscriber is None or subscriber.erasure_due_at is None:
            # The hold was noted but its event never saved (a failed command): nothing to erase.
            result.dropped += 1
            if not dry_run:
                app.vault.store.clear_hold(subscriber_id)
        elif subscriber.is_erased:
            result.already_done += 1
        else:
            result.due.append(subscriber_id)
            if not dry_run and app.complete_erasure(subscriber_id=subscriber_id, actor=actor):
                result.erased += 1
        if tick is not None:
            tick()
    return result


class KeyMaintenance:
    """The key jobs of the process that runs the projections, run every ``poll_seconds`` in a thread of
    their own: follow the store's epoch, end it when due, and complete due erasures once a day."""

    def __init__(self, app: LedgerApplication, policy: Policy, poll_seconds: float = 60.0) -> None:
        self.app = app
        self.policy = policy
        self.poll_seconds = poll_seconds
        self._last_pass = 0.0

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: one round at once, then one every ``poll_seconds``."""
        while True:
            try:
                self.round()
            except Exception:
                # The next round tries again; a failing key store must not stop the server.
                log.exception("key maintenance failed; retrying in %.0f s", self.poll_seconds)
            if stop.wait(self.poll_seconds):
                return

    def round(self) -> Rotation | None:
        """Follow the store's epoch, end it when due, and run the day's erasure pass."""
        vault = self.app.vault
        vault.sync()
        rotation = end_epoch(vault, due_seconds=self.policy.erasure_epoch_seconds)
        if rotation is not None:
            log.info(
                "erasure epoch %d began: %d bucket(s) re-keyed, %d data key(s) and %d salt(s) re-wrapped in %.2f s",
                rotation.epoch,
                rotation.marked_buckets,
                rotation.rewrapped_data_keys,
                rotation.rewrapped_salts,
                rotation.seconds,
            )
        if time.monotonic() - self._last_pass >= DAY_SECONDS or not self._last_pass:
            done = erase_due(self.app, actor="ledger-daily-erasure-pass")
            self._last_pass = time.monotonic()
            if done.erased:
                log.info("completed %d erasure(s) whose retention period ended", done.erased)
        return rotation
