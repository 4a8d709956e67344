"""Where the read models live: an SQLite file beside the embedded store, or a PostgreSQL schema.

Both speak the same SQL (``?`` placeholders, translated for PostgreSQL) through a small connection
wrapper, so the views and queries are written once.
"""

from __future__ import annotations

import contextlib
import select
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
    per statement; preparing each write once and sending ``EXECUTE`` was slower on the server than
    planning it again). Every ``CHUNK`` writes the text is sent without waiting for the server: it runs
    them on the other core while the next ones are bound here, and its answer is collected before
    anything else is sent (libpq's own calls, not psycopg's: a background thread polling in Python gained
    nothing). The views' parameters are text, integers and NULL, which are written as literals here
    (psycopg's ``mogrify`` cost about a fifth of a rebuild); any other value goes through psycopg.
    Anything else (a read, COMMIT, a lock) first sends what is held and collects every answer, in order,
    and then runs alone, so every read sees every earlier write of its transaction. A held write returns
    None: its error, if any, is raised when its answer is collected (at the latest at COMMIT). ROLLBACK
    drops what is held."""

    _WRITES = ("INSERT", "UPDATE", "DELETE")
    CHUNK = 200  # measured: 200 beat 500 by 1.2x in one run (the last chunk of a batch runs alone)

    def __init__(self, cursor: Any) -> None:
        import psycopg

        self.cur = cursor
        self.literal = psycopg.ClientCursor(cursor.connection)
        self.pgconn = cursor.connection.pgconn
        self.encoding = cursor.connection.info.encoding
        self.held: list[tuple[str, Any]] = []
        self.sent = False  # a text was sent whose answer is not collected yet
        # Temporary tables made on this connection (``projections.building``); a rollback may undo them.
        self.temporary: set[str] = set()
        # A statement's text split at its placeholders (statements are constant texts: split once).
        self._parts: dict[str, list[str]] = {}
        # Quotes are doubled and nothing else: backslashes are plain characters only with standard
        # conforming strings (PostgreSQL's default); otherwise every value goes through psycopg.
        self._plain = cursor.connection.info.parameter_status("standard_conforming_strings") == "on"

    def execute(self, sql: str, params: Any = ()) -> Any:
        sql = sql.replace("?", "%s")
        head = sql.lstrip()[:8].upper()
        if head.startswith(self._WRITES):
            self.held.append((sql, params))
            if len(self.held) >= self.CHUNK:
                self.flush(wait=False)
            return None
        if head.startswith("ROLLBACK"):
            self.held.clear()
            self.temporary.clear()
            with contextlib.suppress(Exception):  # rolled back, whatever its writes did
                self.collect()
        else:
            self.flush()
        return self.cur.execute(sql, params)

    def copy(self, sql: str, data: bytes) -> None:
        """Run ``COPY ... FROM STDIN`` with ``data`` (COPY's text format), after every held write."""
        self.flush()
        with self.cur.copy(sql) as copy:
            copy.write(data)

    def flush(self, wait: bool = True) -> None:
        """Send the held writes, bound on this side into one text of several statements, which the
        server runs in order in one round trip; with ``wait``, collect every answer."""
        if self.held:
            held, self.held = self.held, []
            text = ";".join([self._bind(sql, params) for sql, params in held])
            self.collect()
            self.pgconn.send_query(text.encode(self.encoding))
            self.sent = True
            self.pgconn.flush()  # the connection does not block: what the socket takes now, the rest in collect
        if wait:
            self.collect()

    def collect(self) -> None:
        """Wait for the answer to the text sent last; raise the first error in it.

        The waits are ``select`` on the connection's socket, which lets go of the interpreter lock: libpq's
        ``PQgetResult`` blocks while holding it (measured: a thread of the same process stopped for as long
        as the server ran the statements), and the server's other threads (its RPCs) must keep running."""
        if not self.sent:
            return
        self.sent = False
        import psycopg
        from psycopg.pq import ExecStatus

        pg = self.pgconn
        fd = pg.socket
        while pg.flush():  # 1 while the text is not all sent
            readable, _, _ = select.select([fd], [fd], [])
            if readable:
                pg.consume_input()  # the server may answer before it has read everything
        error = None
        while True:
            while pg.is_busy():
                select.select([fd], [], [])
                pg.consume_input()
            result = pg.get_result()
            if result is None:
                break
            if error is None and result.status == ExecStatus.FATAL_ERROR:
                error = psycopg.errors.error_from_result(result, encoding=self.encoding)
        if error is not None:
            raise error

    def _bind(self, sql: str, params: Any) -> str:
        """One statement with its parameters written in as literals."""
        parts = self._parts.get(sql)
        if parts is None:
            parts = self._parts[sql] = sql.split("%s")
        if len(parts) != len(params) + 1 or not self._plain:
            return str(self.literal.mogrify(sql, params))
        out = [parts[0]]
        for value, part in zip(params, parts[1:], strict=True):
            kind = type(value)
            if kind is str:
                if "\0" in value:
                    return str(self.literal.mogrify(sql, params))  # psycopg refuses it, as the server would
                out.append("'" + value.replace("'", "''") + "'")
            elif kind is int:
                out.append(f" {value}")  # a leading space, so a negative number never follows a '-'
            elif value is None:
                out.append("NULL")
            else:
                out.append(str(self.literal.mogrify("%s", (value,))))
            out.append(part)
        return "".join(out)


class PostgresViewsConnection(ViewsConnection):
    """PostgreSQL, with the views in their own schema."""

    begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def __init__(self, conninfo: str, schema: str, readonly: bool = False) -> None:
        import psycopg

        self.conn = psycopg.connect(conninfo, autocommit=True)
        if not readonly:  # readers write nothing: they may be on a hot standby
            self.conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
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
