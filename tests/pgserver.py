"""A throwaway PostgreSQL cluster for the tests, on a loopback port, owned by the postgres user.

``./dev test`` installs Debian's ``postgresql`` package when it is missing; this module creates the
cluster on first use (``initdb`` and ``pg_ctl`` refuse to run as root, so they run through ``runuser``)
and stops it when the test session ends. The port is a free one picked at start (or ``LEDGER_TEST_POSTGRES_PORT``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

# The tests own this cluster (they restart it in a fault test), so an outside server is not used.


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} was not found; install Debian's postgresql package")
    return path


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Cluster:
    """A cluster in a temporary folder; ``url(db)`` names a database in it."""

    def __init__(self, durable: bool = False) -> None:
        # The tests relax durability for speed; a benchmark keeps PostgreSQL's defaults (fsync, synchronous commit).
        self.durable = durable
        self.folder = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
        self.data = self.folder / "data"
        self.port = int(os.environ.get("LEDGER_TEST_POSTGRES_PORT") or _free_port())
        self.started = False

    def start(self) -> None:
        """initdb, then start on 127.0.0.1:PORT with durability settings relaxed for speed."""
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )
        self._pg_ctl_start()
        self.started = True

    def _pg_ctl_start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=300"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            _as_postgres(
                [_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"]
            ),
            check=True,
            capture_output=True,
        )

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server (fast shutdown: sessions are cut), stay down a while, start it again."""
        import time

        subprocess.run(
            _as_postgres([_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            check=True,
            capture_output=True,
        )
        time.sleep(down_seconds)
        self._pg_ctl_start()

    def stop(self) -> None:
        """Stop the cluster and remove its folder."""
        if self.started:
            subprocess.run(
                _as_postgres([_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                check=False,
                capture_output=True,
            )
        shutil.rmtree(self.folder, ignore_errors=True)

    def replica(self) -> Cluster:
        """A hot standby of this cluster, made with ``pg_basebackup -R -X stream`` and started on its own
        port; it streams from this one (stop and start it with ``stop_server``/``start_server``)."""
        standby = Cluster(durable=self.durable)
        if os.geteuid() == 0:
            shutil.chown(standby.folder, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-D",
                 str(standby.data), "-R", "-X", "stream", "-c", "fast", "--no-sync"]
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        standby._pg_ctl_start()
        standby.started = True
        return standby

    def base_backup(self) -> Path:
        """A base backup of the cluster (``pg_basebackup -X stream``, plain files) in a new folder."""
        folder = Path(tempfile.mkdtemp(prefix="ledger-pg-backup-"))
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-D",
                 str(folder / "data"), "-X", "stream", "-c", "fast", "--no-sync"]
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        return folder

    def stop_server(self) -> None:
        """Stop the server (fast shutdown), keeping its data."""
        subprocess.run(
            _as_postgres([_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            check=True,
            capture_output=True,
        )

    def start_server(self) -> None:
        """Start the server again on its port."""
        self._pg_ctl_start()

    def url(self, dbname: str) -> str:
        """A database of this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin_url(self) -> str:
        """The maintenance database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


# Every database made for a test, so the session can remove what the ledger left for each outside the
# cluster (its epoch key file, under the home directory).
CREATED: list[str] = []


def new_database(admin_url: str) -> str:
    """Create an empty database for one test; returns its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    CREATED.append(url)
    return url
