"""Ceilings measured beside the ledger: raw inserts of the same rows, raw select and decode of the log."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any


def raw_insert_rate(db: str, rows: list[tuple[Any, ...]], per_transaction: int) -> float:
    """Insert the same event rows, ``per_transaction`` per commit, into a scratch table."""
    if db.startswith("sqlite"):
        path = Path(db[len("sqlite:///") :]).with_name("raw-ceiling.db")
        lite = sqlite3.connect(path, isolation_level=None)
        lite.execute("PRAGMA journal_mode=WAL")
        lite.execute(
            "CREATE TABLE raw_events (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
            "PRIMARY KEY (originator_id, originator_version))"
        )
        start = time.perf_counter()
        for k in range(0, len(rows), per_transaction):
            lite.execute("BEGIN")
            lite.executemany("INSERT INTO raw_events VALUES (?, ?, ?, ?)", rows[k : k + per_transaction])
            lite.execute("COMMIT")
        elapsed = time.perf_counter() - start
        lite.close()
        path.unlink()
        return len(rows) / per_transaction / elapsed
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE raw_events (notification_id bigserial, originator_id uuid, originator_version "
            "bigint, topic text, state bytea, PRIMARY KEY (originator_id, originator_version))"
        )
        start = time.perf_counter()
        for k in range(0, len(rows), per_transaction):
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO raw_events (originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)",
                    rows[k : k + per_transaction],
                )
        return len(rows) / per_transaction / (time.perf_counter() - start)


def sample_rows(app: Any, count: int) -> list[tuple[Any, ...]]:
    """``count`` recent stored events, as raw rows."""
    top = app.recorder.max_notification_id() or 0
    notes = app.recorder.select_notifications(max(1, top - count + 1), count)
    pg = "Postgres" in type(app.recorder).__name__
    return [
        (n.originator_id if pg else n.originator_id.hex, n.originator_version, n.topic, bytes(n.state)) for n in notes
    ]


def raw_select_decode_rate(app: Any, batch: int = 5000) -> tuple[float, int]:
    """Read every event in batches and decode it into a domain event: the floor of any projection."""
    start = time.perf_counter()
    after, total = 0, 0
    to_domain = app.mapper.to_domain_event
    while True:
        notes = app.recorder.select_notifications(after + 1, batch)
        if not notes:
            break
        for n in notes:
            to_domain(n)
        total += len(notes)
        after = notes[-1].id
    return total / (time.perf_counter() - start), total


def vacuum_analyze(db: str) -> None:
    """VACUUM (FREEZE, ANALYZE) every table of a PostgreSQL database."""
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE)")


def open_store(db: str) -> Any:
    """The ledger application on ``db`` (for reads beside the server)."""
    from ledger.bootstrap import open_ledger
    from ledger.config import Settings

    return open_ledger(Settings.build(db=db))
