"""``ledger project``: the read-model projections as their own process."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import TYPE_CHECKING

from ledger.bootstrap import open_ledger, open_projector, start_projections
from ledger.config import ConfigError
from projections.views import ALL_VIEWS

if TYPE_CHECKING:
    from ledger.config import Settings

log = logging.getLogger("ledger.project")


def run_projections(
    settings: Settings, rebuild: bool = False, once: bool = False, views: list[str] | None = None
) -> int:
    """Catch up (after a rebuild if asked), then follow the ledger until SIGTERM or Ctrl-C.
    With ``views``, this worker keeps only those read models (one worker per read model scales them apart)."""
    known = {cls.name: cls for cls in ALL_VIEWS}
    unknown = sorted(set(views or ()) - set(known))
    if unknown:
        raise ConfigError(f"unknown read models: {', '.join(unknown)} (known: {', '.join(known)})")
    app = open_ledger(settings)
    projector = open_projector(settings, app, [known[name]() for name in views] if views else None)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        started = time.perf_counter()
        if rebuild:
            count = projector.rebuild()
            log.info("rebuilt read models from position 0: %d events in %.1fs", count, time.perf_counter() - started)
        else:
            count = projector.catch_up()
            log.info(
                "caught up: %d events in %.1fs, at position %d",
                count,
                time.perf_counter() - started,
                projector.position,
            )
        if not once:
            log.info("projections following the ledger from position %d", projector.position)
            for thread in start_projections(settings, projector, stop):
                while thread.is_alive():
                    thread.join(0.5)
    finally:
        projector.close()
        app.close()
        app.vault.store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
