"""Release every quarantined number whose quarantine ended and whose data clearance is complete.

Candidates come from the read models beside the store (``--db``); each release goes through the
server (``--target``), which checks the rules again. Request ids are derived from the tenure being
released, so a re-run (after a crash, or twice by mistake) records nothing new. Prints what it did and
what it could not do, and exits 1 if anything was refused.

    python -m scripts.release_due_numbers --db sqlite:///ledger.db --target 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime

import grpc

from ledger.cli import EXIT_INTERRUPTED, add_db_argument, existing_store, one_line_errors
from ledger.connection import Connection, add_connection_arguments
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import lifecycle_service_pb2_grpc
from projections.db import ViewsDatabase
from projections.queries import ReadModels


@one_line_errors("release_due_numbers")
def main(argv: list[str] | None = None) -> int:
    """Release the due numbers; returns 0 when none was refused."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_argument(parser)
    add_connection_arguments(parser)
    parser.add_argument("--limit", type=int, default=0, help="release at most this many (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="list what is due, release nothing")
    parser.add_argument("--actor", default="release_due_numbers", help="actor recorded with each release")
    args = parser.parse_args(argv)
    store = existing_store(args.db)
    views = ViewsDatabase.for_store(store)
    if not views.exists():
        print(
            f"release_due_numbers: no read models at {views.sqlite_path}; is the server or `ledger project` running?",
            file=sys.stderr,
        )
        return 2
    read_models = ReadModels(views)
    channel = Connection.from_args(args).channel()
    stub = lifecycle_service_pb2_grpc.LifecycleServiceStub(channel)
    outcome: Counter[str] = Counter()
    after = ""
    now = datetime.now(UTC)
    interrupted = False
    try:
        done = False
        while not done:
            page = read_models.due_for_release(now, limit=1000, after=after)
            done = not page
            for number, tenure_hex in page:
                after = number
                if args.limit and sum(outcome.values()) >= args.limit:
                    done = True
                    break
                if args.dry_run:
                    print(f"due {number}")
                    outcome["due"] += 1
                    continue
                try:
                    stub.ReleaseNumber(
                        lpb.ReleaseNumberRequest(request_id=f"release-due-{tenure_hex}", number=number),
                        metadata=(("x-ledger-actor", args.actor),),
                        timeout=30,
                    )
                    outcome["released"] += 1
                    print(f"released {number}")
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.UNAVAILABLE:
                        raise  # no server: one line says so, instead of one refusal per number
                    outcome[f"refused ({e.code().name})"] += 1
                    print(f"not released {number}: {e.code().name}: {e.details()}", file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        channel.close()
        read_models.close()
    if interrupted:
        summary = ", ".join(f"{k} {v}" for k, v in sorted(outcome.items())) or "nothing done"
        print(f"release_due_numbers: interrupted: {summary}; the same command again goes on", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = ", ".join(f"{k} {v}" for k, v in sorted(outcome.items())) or "nothing due"
    print(f"release_due_numbers: {summary}")
    return 1 if any(k.startswith("refused") for k in outcome) else 0


if __name__ == "__main__":
    sys.exit(main())
