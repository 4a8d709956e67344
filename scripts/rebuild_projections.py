"""Rebuild the read models from position 0 and report how long it took.

Safe while the server runs: the projector's tracking makes the rebuilt views continue from where the
rebuild ended. ``--views`` limits the rebuild to some read models.

    python -m scripts.rebuild_projections --db sqlite:///ledger.db
"""

from __future__ import annotations

import argparse
import sys
import time

from ledger.bootstrap import open_ledger, open_projector
from ledger.config import Settings
from projections.views import ALL_VIEWS


def main(argv: list[str] | None = None) -> int:
    """Rebuild and print events read, seconds and events per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite:///ledger.db", help="store URL (default sqlite:///ledger.db)")
    parser.add_argument("--views", help="comma-separated views: " + ", ".join(v.name for v in ALL_VIEWS))
    parser.add_argument("--batch-size", type=int, default=2000, help="events per transaction (default 2000)")
    args = parser.parse_args(argv)
    names = args.views.split(",") if args.views else None
    unknown = set(names or ()) - {v.name for v in ALL_VIEWS}
    if unknown:
        parser.error(f"unknown views: {', '.join(sorted(unknown))}")
    settings = Settings.build(db=args.db)
    app = open_ledger(settings)
    projector = open_projector(settings, app)
    projector.batch_size = args.batch_size
    try:
        started = time.perf_counter()
        events = projector.rebuild(names)
        elapsed = time.perf_counter() - started
        rate = events / elapsed if elapsed else 0.0
        print(
            f"rebuilt {', '.join(names or [v.name for v in ALL_VIEWS])}: {events} events in {elapsed:.1f}s "
            f"({rate:,.0f} events/s), at position {projector.position}"
        )
    finally:
        projector.close()
        app.close()
        app.vault.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
