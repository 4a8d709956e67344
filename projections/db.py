"""Where the read models live: an SQLite file beside the embedded store, or a PostgreSQL schema.

Both speak the same SQL (``?`` placeholders, translated for PostgreSQL) through a small connection
wrapper, so the views and queries are written once.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ledger.config import StoreConfig


class Cursor(Protocol):
    """What view handlers use: ``execute`` returning something with ``fetchone``/``fetchall``."""

    def execute(self, sql: str, params: Any = ...) -> Any:
        """Run one statement."""
        ...


class ViewsConnection:
    """One connection to the views database."""

    begin_write = "BEGIN"
    begin_read = "BEGIN"

    def execute(self, sql: str, params: Any = ()) -> Any:
        """Run a statement; returns a cursor."""
        raise NotImplementedError

    def cursor(self) -> Cursor:
        """A cursor for handlers."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    def broken(self) -> bool:
        """Whether the connection was lost (a database restart); it is then replaced."""
        return False

    def lost(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by a statement, means the connection must be replaced."""
        return self.broken()


class SQLiteViewsConnection(ViewsConnection):
    """SQLite in WAL mode, so readers never wait for the projector."""

    begin_write = "BEGIN IMMEDIATE"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def execute(self, sql: str, params: Any = ()) -> Any:
        """Run a statement."""
        return self.conn.execute(sql, params)

    def cursor(self) -> Cursor:
        """A cursor for handlers."""
        return self.conn.cursor()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class _PgCursor:
    """Writes are held back and sent together, bound on this side into one text of many statements
    that the server runs in order in one round trip (psycopg's pipeline mode cost about 60 us of Python
    per statement; sending from a background thread while the next ones were bound gained nothing).
    Each distinct write is prepared once per connection (``PREPARE``, sent in the same text before its
    first ``EXECUTE``), so the server parses and plans it once instead of on every event.
    Anything else (a read, COMMIT, a lock) first sends what is held, in order, and then runs alone, so
    every read sees every earlier write of its transaction. A held write returns None: its error, if
    any, is raised when it is sent (at the latest at COMMIT). ROLLBACK drops what is held, and the
    prepared statements with it (``PREPARE`` is not undone by a rollback, and the text that failed may
    have prepared some of its statements and not others)."""

    _WRITES = ("INSERT", "UPDATE", "DELETE")
    # Distinct statements prepared on one connection before they are all dropped (each generation of a
    # view writes its own texts; bounded so a long-lived projector does not collect them without end).
    PREPARED_LIMIT = 2000

    def __init__(self, cursor: Any) -> None:
        import psycopg

        self.cur = cursor
        self.literal = psycopg.ClientCursor(cursor.connection)
        self.held: list[tuple[str, Any]] = []
        # Statement text (with ``%s``) -> its ``EXECUTE`` with ``%s`` for the parameters, once prepared.
        self.prepared: dict[str, str] = {}

    def execute(self, sql: str, params: Any = ()) -> Any:
        sql = sql.replace("?", "%s")
        head = sql.lstrip()[:8].upper()
        if head.startswith(self._WRITES):
            self.held.append((sql, params))
            return None
        if head.startswith("ROLLBACK"):
            self.held.clear()
            result = self.cur.execute(sql, params)
            self._forget_prepared()
            return result
        self.flush()
        return self.cur.execute(sql, params)

    def flush(self) -> None:
        """Send the held writes: bound on this side into one text of several statements (each an
        ``EXECUTE`` of a statement prepared once), which the server runs in order in one round trip."""
        if not self.held:
            return
        held, self.held = self.held, []
        if len(self.prepared) + len(held) > self.PREPARED_LIMIT:
            self._forget_prepared()
        prepared = self.prepared
        mogrify = self.literal.mogrify
        parts = []
        for sql, params in held:
            call = prepared.get(sql)
            if call is None:
                name = f"rm_w{len(prepared)}"
                count = sql.count("%s")
                numbered = sql.split("%s")
                text = numbered[0] + "".join(f"${k}{rest}" for k, rest in enumerate(numbered[1:], 1))
                parts.append(f"PREPARE {name} AS {text}")
                call = prepared[sql] = f"EXECUTE {name}({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}"
            parts.append(mogrify(call, params) if params else call)
        self.cur.execute(";".join(parts))

    def _forget_prepared(self) -> None:
        if self.prepared:
            self.prepared = {}
            self.cur.execute("DEALLOCATE ALL")


class PostgresViewsConnection(ViewsConnection):
    """PostgreSQL, with the views in their own schema."""

    begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def __init__(self, conninfo: str, schema: str, readonly: bool = False) -> None:
        import psycopg

        self.conn = psycopg.connect(conninfo, autocommit=True)
        if not readonly:  # readers write nothing: they may be on a hot standby
            self.conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            # The writes prepare themselves (``_PgCursor``); psycopg's own statement cache would send
            # DEALLOCATE ALL after any DROP or ROLLBACK, dropping theirs too.
            self.conn.prepare_threshold = None
        self.conn.execute(f'SET search_path TO "{schema}"')
        self._cursor = _PgCursor(self.conn.cursor())

    def execute(self, sql: str, params: Any = ()) -> Any:
        """Run a statement."""
        return self.conn.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]

    def cursor(self) -> Cursor:
        """A cursor for handlers."""
        return self._cursor

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def broken(self) -> bool:
        """Whether the connection was lost."""
        return bool(self.conn.closed or self.conn.broken)

    def lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` says this connection is unusable: a restart's AdminShutdown arrives on a
        connection psycopg does not yet flag as broken."""
        import psycopg

        return self.broken() or isinstance(exc, psycopg.OperationalError)


class ViewsDatabase:
    """Opens connections to the read models' database."""

    def __init__(
        self, sqlite_path: str | None = None, conninfo: str | None = None, schema: str = "ledger_views"
    ) -> None:
        if (sqlite_path is None) == (conninfo is None):
            raise ValueError("give exactly one of sqlite_path and conninfo")
        self.sqlite_path = sqlite_path
        self.conninfo = conninfo
        self.schema = schema

    @classmethod
    def for_store(cls, store: StoreConfig) -> ViewsDatabase:
        """The views of a store: ``ledger.views.db`` beside an SQLite store, schema ``ledger_views`` in PostgreSQL."""
        if store.kind == "sqlite":
            return cls(sqlite_path=str(store.views_path()))
        return cls(conninfo=store.conninfo())

    @property
    def is_postgres(self) -> bool:
        """Whether the views live in PostgreSQL."""
        return self.conninfo is not None

    def connect(self, readonly: bool = False) -> ViewsConnection:
        """A new connection; a ``readonly`` one creates nothing (a reader may be on a hot standby)."""
        if self.sqlite_path is not None:
            return SQLiteViewsConnection(self.sqlite_path)
        if self.conninfo is not None:
            return PostgresViewsConnection(self.conninfo, self.schema, readonly)
        raise ValueError("a views database needs an SQLite path or a PostgreSQL connection string")

    def exists(self) -> bool:
        """Whether the views database was created (an SQLite file, or any PostgreSQL database)."""
        if self.sqlite_path is not None:
            from pathlib import Path

            return Path(self.sqlite_path).exists()
        return True
