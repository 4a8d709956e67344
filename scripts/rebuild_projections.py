"""Rebuild the read models from position 0 beside the serving ones, switch to them, report the work.

Safe while servers run: the serving generation keeps answering (and following the ledger) until the
new one has caught up; then the new one serves, in one transaction. ``--views`` limits the rebuild to
some read models. The report says which generation now serves each view, from which position, and how
many events this process applied (another rebuilder working on the same generation shares the work).

    python -m scripts.rebuild_projections --db sqlite:///ledger.db
"""

from __future__ import annotations

import argparse
import sys
import time

from ledger.bootstrap import open_ledger, open_projector
from ledger.cli import add_db_argument, existing_store, one_line_errors
from ledger.config import Settings
from projections.projector import BUILD_BATCH
from projections.views import ALL_VIEWS


@one_line_errors("rebuild_projections")
def main(argv: list[str] | None = None) -> int:
    """Rebuild, then print each view's serving generation, the events applied, seconds and events per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_argument(parser)
    parser.add_argument("--views", help="comma-separated views: " + ", ".join(v.name for v in ALL_VIEWS))
    parser.add_argument(
        "--batch-size",
        type=int,
        help="events per transaction (default 2000; 10000 while PostgreSQL builds the views in memory)",
    )
    args = parser.parse_args(argv)
    names = args.views.split(",") if args.views else None
    unknown = set(names or ()) - {v.name for v in ALL_VIEWS}
    if unknown:
        parser.error(f"unknown views: {', '.join(sorted(unknown))}")
    existing_store(args.db)
    settings = Settings.build(db=args.db)
    app = open_ledger(settings)
    projector = open_projector(settings, app)
    projector.build_batch_size = args.batch_size or BUILD_BATCH
    if args.batch_size:
        projector.batch_size = args.batch_size
    try:
        started = time.perf_counter()
        events = projector.rebuild(names)
        elapsed = time.perf_counter() - started
        rate = events / elapsed if elapsed else 0.0
        for name in names or [v.name for v in ALL_VIEWS]:
            gen = projector.targets[name]
            print(f"view {name}: generation {gen.generation} serves, at position {gen.position}")
        print(f"rebuilt: this process applied {events} events in {elapsed:.1f}s ({rate:,.0f} events/s)")
    finally:
        projector.close()
        app.close()
        app.vault.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
