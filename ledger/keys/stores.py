"""The key stores: an SQLite file of its own (``secure_delete``, rollback journal), a PostgreSQL schema,
and an in-memory SQLite database for tests. All run the statements of ``KeyTables``."""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from ledger.keys.tables import KeyTables, Tx, schema

T = TypeVar("T")

# The advisory lock every writer of a PostgreSQL key store takes (rotations, new keys, erasures).
KEY_STORE_LOCK = zlib.crc32(b"ledger key store") & 0x7FFFFFFF


class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(sql, params).fetchall()]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.conn.executemany(sql, rows)


class SQLiteKeyStore(KeyTables):
    """Wrapped keys in their own SQLite file, with ``secure_delete`` so destroyed rows are zeroed.

    The rollback journal (not WAL) is used so that no copy of a destroyed key lingers in a log file;
    a copy of the file taken before (a backup) still holds it, which is why it is wrapped under a
    bucket key that the epoch's end replaces."""

    def __init__(self, path: str, read_only: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        if read_only:
            # An auditor's offline check: the file is opened, never created or changed.
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
            return
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA secure_delete=ON")
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=DELETE")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS data_keys (
                subscriber_id TEXT PRIMARY KEY, wrapped_key BLOB NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS destroyed_keys (
                subscriber_id TEXT PRIMARY KEY, destroyed_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS pending_erasures (
                subscriber_id TEXT PRIMARY KEY, requested_at TEXT NOT NULL);
            """
        )
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(data_keys)")}
        if "bucket" not in columns:
            self._conn.execute("ALTER TABLE data_keys ADD COLUMN bucket INTEGER")
        for statement in schema("", "BLOB", "INTEGER"):
            self._conn.execute(statement)

    def _read(self, work: Callable[[Tx], T]) -> T:
        with self._lock:
            return work(_SQLiteTx(self._conn))

    def _write(self, work: Callable[[Tx], T]) -> T:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(_SQLiteTx(self._conn))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return result

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self.closed = True
            self._conn.close()


class MemoryKeyStore(SQLiteKeyStore):
    """The SQLite key store in memory (tests and the in-memory event store)."""

    def __init__(self) -> None:
        super().__init__(":memory:")


class _PostgresTx:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql.replace("?", "%s"), params)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), rows)


class PostgresKeyStore(KeyTables):
    """Wrapped keys in their own PostgreSQL schema (or database), apart from the events.

    PostgreSQL cannot be made to forget a row: a deleted key stays in the table file until VACUUM and
    in ``pg_wal``, replicas and base backups for as long as they are kept. Erasure does not depend on
    forgetting: every copy is wrapped under a bucket key that the epoch's end re-keys, wrapped in turn
    under an epoch secret that only the hosts' key files hold. A dropped connection (a database restart)
    is reopened on the next call."""

    def __init__(self, conninfo: str, schema_name: str = "ledger_keys", read_only: bool = False) -> None:
        self.conninfo = conninfo
        self.schema = schema_name
        self.prefix = f'"{schema_name}".'
        self._lock = threading.Lock()
        self._conn: Any = None
        t = self.prefix

        def create(tx: Tx) -> None:
            tx.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema_name}"')
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {t}data_keys (subscriber_id uuid PRIMARY KEY, "
                "wrapped_key bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
            )
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {t}destroyed_keys (subscriber_id uuid PRIMARY KEY, "
                "destroyed_at timestamptz NOT NULL DEFAULT now())"
            )
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {t}pending_erasures (subscriber_id uuid PRIMARY KEY, "
                "requested_at timestamptz NOT NULL DEFAULT now())"
            )
            tx.execute(f"ALTER TABLE {t}data_keys ADD COLUMN IF NOT EXISTS bucket integer")
            for statement in schema(t, "bytea", "bigint"):
                tx.execute(statement)

        if not read_only:
            self._write(create)

    def _sid(self, subscriber_id: UUID) -> Any:
        return subscriber_id

    def _run(self, work: Callable[[Any], T]) -> T:
        import psycopg

        with self._lock:
            for attempt in range(2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
                    return work(self._conn)
                except psycopg.OperationalError:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    if attempt == 1:
                        raise
        raise AssertionError("unreachable")

    def _read(self, work: Callable[[Tx], T]) -> T:
        return self._run(lambda c: work(_PostgresTx(c)))

    def _write(self, work: Callable[[Tx], T]) -> T:
        def locked(c: Any) -> T:
            with c.transaction():
                c.execute("SELECT pg_advisory_xact_lock(%s)", (KEY_STORE_LOCK,))
                return work(_PostgresTx(c))

        return self._run(locked)

    def _after_destroy(self) -> None:
        # Reclaims the dead row in the table file; the bytes may stay in pg_wal, replicas and backups,
        # which is why the key is also wrapped under a bucket key that the epoch's end replaces.
        self._run(lambda c: c.execute(f"VACUUM {self.prefix}data_keys"))

    def vacuum(self) -> None:
        """VACUUM the key tables (after a rotation rewrote many rows)."""
        statements = [f"VACUUM {self.prefix}{table}" for table in ("data_keys", "bucket_keys", "identity_salts")]

        def work(c: Any) -> None:
            for statement in statements:
                c.execute(statement)

        self._run(work)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
