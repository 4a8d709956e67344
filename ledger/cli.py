"""What a person sees when a command goes wrong: one line that says what is wrong and what to do.

Every ``main`` of ``ledger`` and of the batch jobs is wrapped by :func:`one_line_errors`: a slip (a
mistyped path, a server that is not running, a database that refuses connections, Ctrl-C) ends with
one line on stderr and exit code 2 for usage, 1 for a failed run, 130 for an interrupt; never a
traceback. Output files are written under a temporary name and renamed only when complete.
"""

from __future__ import annotations

import argparse
import functools
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from ledger.config import DEFAULT_DB, StoreConfig
from ledger.policy import ConfigError

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


class RunFailed(Exception):
    """Raised when a job cannot go on for a reason the person running it can fix; the message says how."""


class UsageError(Exception):
    """Raised when a job was given input it does not take (exit 2); the message says what it takes."""


class Main(Protocol):
    """A job's entry point: ``main(argv) -> exit code``."""

    def __call__(self, argv: list[str] | None = None) -> int: ...


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """``--db URL``, defaulting to ``LEDGER_DB`` and then ``sqlite:///ledger.db``, as for the server."""
    default = os.environ.get("LEDGER_DB") or DEFAULT_DB
    parser.add_argument("--db", default=default, help=f"store URL (default: LEDGER_DB, else {DEFAULT_DB})")


def existing_store(url: str) -> StoreConfig:
    """The store at ``url``, which must already hold a ledger when it is an SQLite file."""
    store = StoreConfig.from_url(url)
    path = store.sqlite_path
    if path is not None and not path.is_file():
        raise RunFailed(f"no ledger at {path} (check --db or LEDGER_DB; the server creates it on first start)")
    return store


def one_line_errors(prog: str) -> Callable[[Main], Main]:
    """Wrap a ``main(argv) -> int`` so that every failure a person can cause prints one line."""

    def wrap(main: Main) -> Main:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except KeyboardInterrupt:
                return _say(prog, "interrupted", EXIT_INTERRUPTED)
            except (ConfigError, UsageError) as e:
                return _say(prog, str(e), EXIT_USAGE)
            except RunFailed as e:
                return _say(prog, str(e), EXIT_FAILED)
            except Exception as e:
                message = describe(e)
                if message is None:
                    raise
                return _say(prog, message, EXIT_FAILED)

        return run

    return wrap


def describe(error: BaseException) -> str | None:
    """One line for an error a person can cause, or None for a bug (which keeps its traceback)."""
    import grpc
    import psycopg
    from eventsourcing.persistence import InterfaceError, OperationalError

    from ledger.domain.errors import LedgerError

    if isinstance(error, LedgerError):  # the ledger's own refusal (read models rebuilding, say) says why
        return str(error)
    if isinstance(error, grpc.RpcError) and isinstance(error, grpc.Call):
        code = error.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            return (
                f"no ledger server answers ({_first_line(error.details())}); "
                "start one (./dev serve) or pass --target HOST:PORT / LEDGER_TARGET "
                "(and --tls-ca for a server with TLS)"
            )
        return f"the server refused the call: {code.name}: {_first_line(error.details())}"
    # A database without the ledger's tables: a URL pointing at the wrong database, or one not migrated.
    if isinstance(error, psycopg.errors.UndefinedTable):
        return (
            f"no ledger in this PostgreSQL database ({_first_line(str(error))}); "
            "check --db or LEDGER_DB (ledger migrate creates one)"
        )
    # Only errors of reaching or opening a database: a bad statement is a bug and keeps its traceback.
    if isinstance(error, psycopg.OperationalError | OperationalError | InterfaceError):
        cause = error.__cause__ or error
        return f"cannot use the PostgreSQL store: {_first_line(str(cause))} (check --db or LEDGER_DB, and that it runs)"
    if isinstance(error, sqlite3.OperationalError) or type(error) is sqlite3.DatabaseError:
        return f"cannot use the SQLite store: {error} (check --db or LEDGER_DB)"
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    if isinstance(error, OSError):
        return str(error)
    return None


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "no details"


def _say(prog: str, message: str, code: int) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return code


@contextmanager
def output_file(path: Path, newline: str | None = None) -> Iterator[IO[str]]:
    """Write ``path`` under the name ``path.partial`` and rename it to ``path`` only when complete.

    When the block fails or is interrupted the ``.partial`` file stays (so a person sees how far it got
    and that it is not complete) and ``path`` is left as it was.
    """
    partial = partial_name(path)
    with partial.open("w", encoding="utf-8", newline=newline) as out:
        yield out
    partial.replace(path)


def partial_name(path: Path) -> Path:
    """Where :func:`output_file` writes until the output is complete."""
    return path.with_name(path.name + ".partial")
