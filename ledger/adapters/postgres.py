"""The PostgreSQL backend: the event recorder with gap-free positions and the hash chains, and log
readers (the key store is ``ledger.keys.stores.PostgresKeyStore``).

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
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from ledger.adapters.log import LogReader, sql_proof_store, sql_stream_ids
from ledger.integrity import CHAIN_TABLE, GENESIS, chain_rows
from ledger.proofs.batches import BatchWriter
from ledger.proofs.log_tree import TREE_TABLE, Frontier, TreeAppender
from ledger.proofs.store import ProofStore, postgres_proof_tables

__all__ = ["ChainedPostgresRecorder", "ReadOnlyLog", "recorder_reader"]


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """Gap-free positions, both hash chains and the Merkle tree, in the transaction that inserts the events."""

    merkle_tree = True

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self._frontier: Frontier | None = None
        self.batch_writer = BatchWriter(prefix=f'"{datastore.schema}".', mark="%s")
        schema, table = Identifier(datastore.schema), Identifier(events_table_name)
        chain = Identifier(CHAIN_TABLE)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{chain} (position bigint PRIMARY KEY, "
                "stream_hash bytea NOT NULL, chain_hash bytea NOT NULL)"
            ).format(schema=schema, chain=chain)
        )
        self.sql_create_statements.extend(SQL(t) for t in postgres_proof_tables(datastore.schema))  # type: ignore[misc]
        self._qualified_events = f'"{datastore.schema}"."{events_table_name}"'
        self._tree_table = f'"{datastore.schema}"."{TREE_TABLE}"'
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
        # The insert's preamble in one round trip (no parameters: the simple protocol runs them in order, in
        # the transaction): the lock's timeout, the writers' lock, the commit notification, the last position.
        self._preamble = SQL("{timeout}; {lock}; NOTIFY {channel}; {max_position}").format(
            timeout=self._lock_timeout,
            lock=self._writer_lock,
            channel=Identifier(self.channel_name),
            max_position=self._max_position,
        )
        # (position, chain hash) of the last event this recorder committed: while it is still the last one,
        # the next insert needs no read of the chain's head (a committed row never changes).
        self._chain_end: tuple[int, bytes] | None = None
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
    def log_reader(self) -> LogReader:
        """The log reader over this recorder's connection pool."""
        return recorder_reader(self)

    def proof_store(self) -> ProofStore:
        """The proof tables (tree, signed heads, stream map) beside the events, in the same schema."""
        return sql_proof_store(self.datastore, _values, postgres=True)

    def batch_store(self) -> ProofStore:
        """The proof tables, which hold the batch MACs and marks too."""
        return self.proof_store()

    def snapshot_ids(self, snapshots: Any) -> set[UUID]:
        """Ids of the streams that have a snapshot in the snapshots recorder of this store."""
        table = f'"{snapshots.datastore.schema}"."{snapshots.events_table_name}"'
        return sql_stream_ids(snapshots.datastore, table, _values)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Insert the events and their chain rows atomically; returns their positions."""
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            curs.execute(self._preamble)
            while curs.nextset():  # to the last statement's result
                pass
            base = int(curs.fetchone()["m"])  # type: ignore[index]
            positions = list(range(base + 1, base + 1 + len(stored_events)))
            curs.executemany(
                self._insert,
                [
                    (e.originator_id, e.originator_version, e.topic, e.state, p)
                    for e, p in zip(stored_events, positions, strict=True)
                ],
            )
            frontier = None
            if self.merkle_tree:  # first: over events removed from the log it refuses, rather than conflicts
                frontier = self._tree(curs).append(stored_events, positions, self._frontier)
            chain_end = self._chain_end
            if chain_end is not None and chain_end[0] == base:
                previous_chain = chain_end[1]
            else:
                curs.execute(self._chain_head, prepare=True)
                row = curs.fetchone()
                previous_chain = bytes(row["chain_hash"]) if row else GENESIS

            def stream_head(stream_id: Any, version: int) -> bytes:
                curs.execute(self._stream_head, (stream_id, version), prepare=True)
                found = curs.fetchone()
                return bytes(found["stream_hash"]) if found else GENESIS

            rows = chain_rows(stored_events, positions, previous_chain, stream_head)
            curs.executemany(self._insert_chain, rows)
            curs.execute(self.batch_writer.insert_sql(), self.batch_writer.seal(_query(curs), stored_events, positions))
        self._frontier = frontier  # committed: the next insert may start from it (one read less)
        self._chain_end = (rows[-1][0], rows[-1][2])
        self.batch_writer.end = positions[-1]
        return positions

    def _tree(self, curs: Any) -> TreeAppender:
        query = _query(curs)

        def insert(nodes: list[Any]) -> None:
            # COPY: the tree adds about two rows per event, and COPY writes them at a fraction of the cost
            # of as many INSERTs (measured: the tree cost half the raw insert rate with executemany).
            if len(nodes) < 64:  # a few rows: one pipelined statement costs less than a COPY's round trips
                curs.executemany(f"INSERT INTO {self._tree_table} VALUES (%s, %s)", nodes)
                return
            with curs.copy(f"COPY {self._tree_table} (node, hash) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "bytea"])
                for row in nodes:
                    copy.write_row(row)

        return TreeAppender(
            query, table=self._tree_table, events=self._qualified_events, position="notification_id", mark="%s",
            insert=insert, array=True, feed=lambda: self.batch_writer.catch_up_feed(query),
        )  # fmt: skip

    def catch_up_tree(self) -> int:
        """Append the tree's missing leaves now (``ledger migrate``), under the writers' lock; returns how many."""
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            curs.execute(self._lock_timeout)
            curs.execute(self._writer_lock)
            curs.execute(self._max_position)
            return self._tree(curs).catch_up(int(curs.fetchone()["m"]))  # type: ignore[index]


def _query(curs: Any) -> Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]:
    def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        curs.execute(sql, params)
        return [tuple(r.values()) for r in curs.fetchall()]

    return query


class UntreedPostgresRecorder(ChainedPostgresRecorder):
    """The chained recorder without the Merkle tree (``LEDGER_MERKLE_TREE=0``, to measure its cost)."""

    merkle_tree = False


def recorder_reader(recorder: PostgresApplicationRecorder) -> LogReader:
    """A log reader over the application's own recorder (its connection pool)."""
    schema = recorder.datastore.schema

    def query(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [tuple(r.values()) for r in c.fetchall()]

    def max_position() -> int:
        return recorder.max_notification_id() or 0

    return LogReader(
        query,
        postgres=True,
        events=f'"{schema}"."{recorder.events_table_name}"',
        chain=f'"{schema}"."{CHAIN_TABLE}"',
        max_position=max_position,
    )


class ReadOnlyLog:
    """A read-only connection to a PostgreSQL ledger, in one repeatable-read transaction (one consistent
    view) for as long as it is open; ``reader`` reads it."""

    def __init__(self, conninfo: str, schema: str = "public", events_table: str = "ledger_events") -> None:
        import psycopg

        self._conn = psycopg.connect(conninfo, connect_timeout=5)
        self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        self.reader = LogReader(
            self._query, postgres=True, events=f'"{schema}"."{events_table}"', chain=f'"{schema}"."{CHAIN_TABLE}"'
        )
        self.proofs = ProofStore(self._query, None, postgres=True, prefix=f'"{schema}".')

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]

    def close(self) -> None:
        """End the transaction and close the connection."""
        self._conn.rollback()
        self._conn.close()


def _values(row: Any) -> tuple[Any, ...]:
    """A fetched row (the pool's rows are dicts) as a tuple."""
    return tuple(row.values())
