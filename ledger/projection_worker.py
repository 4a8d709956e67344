"""``ledger project``: the read-model projections as their own process."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import TYPE_CHECKING

from ledger.bootstrap import key_jobs, open_ledger, open_projector, row_seal, start_projections
from ledger.policy import ConfigError
from projections.projector import BUILD_BATCH
from projections.views import ALL_VIEWS

if TYPE_CHECKING:
    from ledger.config import Settings

log = logging.getLogger("ledger.project")


def run_projections(
    settings: Settings,
    rebuild: bool = False,
    once: bool = False,
    views: list[str] | None = None,
    prepare: bool = False,
) -> int:
    """Catch up (after a rebuild if asked), then follow the ledger until SIGTERM or Ctrl-C.
    With ``views``, this worker keeps only those read models (one worker per read model scales them apart).
    ``prepare`` (with ``once``) builds the generations this release needs where the schema changed, beside
    those older servers read, and exits: servers of this release then start on current read models."""
    known = {cls.name: cls for cls in ALL_VIEWS}
    unknown = sorted(set(views or ()) - set(known))
    if unknown:
        raise ConfigError(f"unknown read models: {', '.join(unknown)} (known: {', '.join(known)})")
    app = open_ledger(settings)
    projector = open_projector(settings, app, [known[name]() for name in views] if views else None)
    projector.build_batch_size = BUILD_BATCH  # larger batches while PostgreSQL builds a generation in memory
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
        if prepare:
            for name, gen in sorted(projector.targets.items()):
                log.info("prepared: view %s generation %d (schema version %d) at position %d", name,
                         gen.generation, gen.version, gen.position)  # fmt: skip
        if not once:
            log.info("projections following the ledger from position %d", projector.position)
            for thread in start_projections(settings, projector, key_jobs(settings, app), stop):
                while thread.is_alive():
                    thread.join(0.5)
    finally:
        projector.close()
        app.close()
        app.vault.store.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def prune(settings: Settings) -> int:
    """Drop the read-model generations this release does not serve: replaced, mismatched, and those of
    other schema versions (run once no server of an older release is left). Prints what it dropped."""
    from projections import generations as gens_
    from projections.db import ViewsDatabase
    from projections.projector import lock_views

    views_db = ViewsDatabase.for_store(settings.store)
    known = {cls.name: cls for cls in ALL_VIEWS}
    conn = views_db.connect()
    dropped = []
    try:
        cur = conn.cursor()
        cur.execute(conn.begin_write)
        try:
            lock_views(cur, list(known), views_db.is_postgres)
            for gen in gens_.read_generations(cur):
                cls = known.get(gen.view)
                keep = cls is not None and gen.version == cls.version and gen.state in (gens_.READY, gens_.BUILDING)
                if cls is not None and not keep:
                    gens_.drop_tables(cur, cls, gen)
                    cur.execute("DELETE FROM rm_generations WHERE key=?", (gen.key,))
                    dropped.append(gen)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
    finally:
        conn.close()
    for gen in dropped:
        print(f"dropped view {gen.view} generation {gen.generation} (schema version {gen.version}, {gen.state})")
    print(f"{len(dropped)} generation(s) dropped")
    return 0


def audit_views(settings: Settings, number: str | None = None, sample: int = 0, repair: bool = False) -> int:
    """``ledger audit-views``: print each stored value that differs from the replay; 0 when none (or all
    were repaired), 1 otherwise."""
    from ledger.domain.identifiers import InvalidValue, parse_msisdn
    from projections.audit import Auditor
    from projections.db import ViewsDatabase

    numbers = None
    if number is not None:
        try:
            numbers = [parse_msisdn(number)]
        except InvalidValue as e:
            raise ConfigError(f"--number: {e}") from None
    app = open_ledger(settings)
    auditor = Auditor(app.recorder, app.mapper, ViewsDatabase.for_store(settings.store), row_seal(app))
    try:
        started = time.perf_counter()
        report = auditor.audit(numbers, sample=sample, repair=repair)
        elapsed = time.perf_counter() - started
    finally:
        auditor.close()
        app.close()
        app.vault.store.close()
    for m in report.mismatches:
        print(f"MISMATCH {m.number} {m.field}: stored {m.stored!r}, replayed {m.replayed!r}")
    rate = report.numbers_checked / elapsed if elapsed else 0.0
    print(
        f"audited {report.numbers_checked} numbers at position {report.as_of_position} in {elapsed:.1f}s "
        f"({rate:,.0f} numbers/s): {len(report.mismatched_numbers)} differ"
        + (f", {report.repaired} repaired" if repair else "")
    )
    return 0 if report.ok or (repair and report.repaired == len(report.mismatched_numbers)) else 1
