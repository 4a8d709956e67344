"""Complete every erasure whose retention period has ended: destroy the key, record it as an event.

Erasures requested inside the retention period (``identity_retention_days`` after the subscriber's last
tenure ended) were recorded and their data restricted; this job finishes them. Each completion is
recorded by ``--actor`` under a request id derived from the subscriber, so a re-run (or the server's own
daily pass running too) records nothing twice. The erased keys' copies stop opening at the end of the
erasure epoch (``ledger keys rotate`` ends it now).

    python -m scripts.erase_due --db sqlite:///ledger.db [--dry-run]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ledger.cli import add_db_argument, existing_store, one_line_errors
from ledger.config import Settings


@one_line_errors("erase_due")
def main(argv: list[str] | None = None) -> int:
    """Complete the due erasures; returns 0."""
    from ledger.application.key_jobs import erase_due
    from ledger.bootstrap import open_ledger

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_argument(parser)
    parser.add_argument("--master-key-file", type=Path, help="as for `ledger serve`")
    parser.add_argument("--dry-run", action="store_true", help="list what is due, erase nothing")
    parser.add_argument("--actor", default="erase_due", help="actor recorded with each completed erasure")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    existing_store(args.db)
    app = open_ledger(Settings.build(db=args.db, master_key_file=args.master_key_file))
    try:
        held = app.vault.store.held_erasures(due_by_us=int(app.clock.now().timestamp() * 1_000_000))
        with tqdm(total=len(held), unit="erasures", disable=args.no_progress, file=sys.stderr) as bar:
            done = erase_due(app, args.actor, dry_run=args.dry_run, tick=lambda: bar.update(1))
    finally:
        app.close()
        app.vault.store.close()
    for subscriber_id in done.due:
        print(f"{'due' if args.dry_run else 'erased'} {subscriber_id}")
    verb = "due" if args.dry_run else "erased"
    print(
        f"{len(done.due) if args.dry_run else done.erased} {verb}, {done.already_done} already erased, "
        f"{done.dropped} dropped (requests never recorded)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
