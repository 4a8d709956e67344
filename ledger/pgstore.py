"""The PostgreSQL event store: the library's recorder with gap-free positions and the hash chains.

The library numbers events with a ``bigserial``, which leaves gaps whenever a transaction that drew
numbers rolls back (every optimistic-concurrency conflict does). Positions here are gap-free: under one
transaction-scoped advisory lock per events table (which serialises writers across processes, so
commit order equals position order) each insert takes ``max(notification_id) + 1``. The chain rows are
written in the same transaction, exactly as on SQLite.

The library serialises with ``LOCK TABLE ... IN EXCLUSIVE MODE`` instead; that lock conflicts with
VACUUM and ANALYZE, so under a steady write load autovacuum is cancelled again and again, the table is
never analysed, and the planner, without statistics, picked plans for the stream reads that scanned a
whole index (tens of milliseconds per read at two million events). The advisory lock serialises the
same writers and leaves autovacuum alone. A writer of an older version still taking the table lock
cannot interleave with one taking the advisory lock: its table lock waits for the other's insert to
commit and the other's insert waits for its commit, and two equal positions fail on the unique index
and are retried as a conflict.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from ledger.chain import CHAIN_TABLE, GENESIS, chain_hash, stream_hash


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """Gap-free positions and both hash chains, in the transaction that inserts the events."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema, table = Identifier(datastore.schema), Identifier(events_table_name)
        chain = Identifier(CHAIN_TABLE)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{chain} (position bigint PRIMARY KEY, "
                "stream_hash bytea NOT NULL, chain_hash bytea NOT NULL)"
            ).format(schema=schema, chain=chain)
        )
        self._max_position = SQL("SELECT COALESCE(MAX(notification_id), 0) AS m FROM {schema}.{table}").format(
            schema=schema, table=table
        )
        self._chain_head = SQL("SELECT chain_hash FROM {schema}.{chain} ORDER BY position DESC LIMIT 1").format(
            schema=schema, chain=chain
        )
        self._insert = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state, notification_id) "
            "VALUES (%s, %s, %s, %s, %s)"
        ).format(schema=schema, table=table)
        # Two key lookups, written so that no plan (with or without statistics) can join by scanning.
        self._stream_head = SQL(
            "SELECT stream_hash FROM {schema}.{chain} WHERE position = (SELECT notification_id FROM "
            "{schema}.{table} WHERE originator_id = %s AND originator_version = %s)"
        ).format(schema=schema, table=table, chain=chain)
        # The advisory lock's key: fixed per events table (schema and name), the same in every process.
        self._writer_lock = SQL("SELECT pg_advisory_xact_lock({key})").format(
            key=zlib.crc32(f"ledger-writers:{datastore.schema}.{events_table_name}".encode()) >> 1
        )
        self._lock_timeout = SQL("SET LOCAL lock_timeout = '{0}s'").format(datastore.lock_timeout)
        self._insert_chain = SQL("INSERT INTO {schema}.{chain} VALUES (%s, %s, %s)").format(schema=schema, chain=chain)

    # The library retries every read 10 times; while the database is down that holds a call for tens of
    # seconds. Two quick attempts ride over a dropped pooled connection, then the caller hears UNAVAILABLE.
    select_events = retry((InterfaceError, OperationalError), max_attempts=2, wait=0.1)(
        PostgresApplicationRecorder.select_events.__wrapped__  # type: ignore[attr-defined]
    )
    select_notifications = retry((InterfaceError, OperationalError), max_attempts=2, wait=0.1)(
        PostgresApplicationRecorder.select_notifications.__wrapped__  # type: ignore[attr-defined]
    )
    max_notification_id = retry((InterfaceError, OperationalError), max_attempts=2, wait=0.1)(
        PostgresApplicationRecorder.max_notification_id.__wrapped__  # type: ignore[attr-defined]
    )

    @retry((InterfaceError, OperationalError), max_attempts=2, wait=0.1)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Insert the events and their chain rows atomically; returns their positions."""
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            curs.execute(self._lock_timeout)
            curs.execute(self._writer_lock, prepare=True)
            self._notify_channel(curs)
            curs.execute(self._max_position, prepare=True)
            base = int(curs.fetchone()["m"])  # type: ignore[index]
            positions = list(range(base + 1, base + 1 + len(stored_events)))
            curs.executemany(
                self._insert,
                [
                    (e.originator_id, e.originator_version, e.topic, e.state, p)
                    for e, p in zip(stored_events, positions, strict=True)
                ],
            )
            curs.execute(self._chain_head, prepare=True)
            row = curs.fetchone()
            previous_chain = bytes(row["chain_hash"]) if row else GENESIS
            heads: dict[Any, bytes] = {}
            chain_rows = []
            for e, position in zip(stored_events, positions, strict=True):
                previous_stream = heads.get(e.originator_id)
                if previous_stream is None:
                    previous_stream = GENESIS
                    if e.originator_version > 1:
                        curs.execute(self._stream_head, (e.originator_id, e.originator_version - 1), prepare=True)
                        found = curs.fetchone()
                        previous_stream = bytes(found["stream_hash"]) if found else GENESIS
                digest = stream_hash(previous_stream, e.originator_id, e.originator_version, e.topic, e.state)
                previous_chain = chain_hash(previous_chain, position, digest)
                heads[e.originator_id] = digest
                chain_rows.append((position, digest, previous_chain))
            curs.executemany(self._insert_chain, chain_rows)
        return positions
