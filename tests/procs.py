"""Ledger processes for end-to-end tests: ``ledger serve`` and ``ledger project`` on either store."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc

from ledger.v1 import history_service_pb2_grpc, lifecycle_service_pb2_grpc, recycling_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
MASTER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "LEDGER_MASTER_KEY": MASTER_KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``python -m ledger serve`` as its own process, with stubs over one channel."""

    def __init__(
        self,
        db: str,
        extra: tuple[str, ...] = (),
        port: int | None = None,
        log: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.db, self.port = db, port or free_port()
        self.target = f"127.0.0.1:{self.port}"
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve", "--db", db, "--listen", self.target, "--log-level", "INFO",
             *extra],
            env={**ENV, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )  # fmt: skip
        self.channel = grpc.insecure_channel(self.target)
        grpc.channel_ready_future(self.channel).result(timeout=60)
        self.lifecycle = lifecycle_service_pb2_grpc.LifecycleServiceStub(self.channel)
        self.history = history_service_pb2_grpc.HistoryServiceStub(self.channel)
        self.recycling = recycling_service_pb2_grpc.RecyclingServiceStub(self.channel)

    def stop(self, timeout: float = 60) -> int:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


def project(db: str, *args: str, wait: bool = True, timeout: float = 300) -> Any:
    """``python -m ledger project --db DB ARGS``: run to the end (``wait``), or return the process."""
    command = [sys.executable, "-m", "ledger", "project", "--db", db, *args]
    if wait:
        return subprocess.run(command, env=ENV, check=True, capture_output=True, text=True, timeout=timeout)
    return subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def views_query(db: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a statement on the views database of a store URL (empty when there are no views yet)."""
    try:
        if db.startswith("sqlite:///"):
            path = Path(db[len("sqlite:///") :])
            conn = sqlite3.connect(path.with_name(path.stem + ".views.db"), timeout=30)
            try:
                rows = conn.execute(sql, params).fetchall()
                conn.commit()
                return rows
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(db, autocommit=True) as pg:
            pg.execute('SET search_path TO "ledger_views"')
            cur = pg.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
    except Exception:
        return []


def ledger_head(db: str) -> int:
    """The ledger's last position, read from the store."""
    if db.startswith("sqlite:///"):
        conn = sqlite3.connect(db[len("sqlite:///") :], timeout=30)
        try:
            return int(conn.execute("SELECT max(rowid) FROM stored_events").fetchone()[0] or 0)
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(db) as pg:
        return int(pg.execute("SELECT max(notification_id) FROM ledger_events").fetchone()[0] or 0)
