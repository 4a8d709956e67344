"""Configuration: the server settings, built once at start-up from arguments and ``LEDGER_*`` variables;
the database URL and the recorder topics per store; the budgets per caller. The policy file is read by
``ledger.policy`` (import ``Policy`` and ``ConfigError`` from there)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from ledger.policy import ConfigError, Policy

__all__ = ["DEFAULT_DB", "DEFAULT_LISTEN", "Limits", "Settings", "StoreConfig"]

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DB = "sqlite:///ledger.db"


@dataclass(frozen=True)
class StoreConfig:
    """Where events, keys and read models live."""

    kind: str  # "sqlite" (embedded) or "postgres"
    sqlite_path: Path | None = None
    postgres: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str) -> StoreConfig:
        """Parse ``sqlite:///path`` (relative) or ``sqlite:////abs/path``, or ``postgresql://...``."""
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            raw = url[len("sqlite://") :]
            if not raw.startswith("/") or raw == "/":
                raise ConfigError(f"SQLite URL must look like sqlite:///ledger.db, got {url!r}")
            # sqlite:///ledger.db is relative to the working directory; sqlite:////srv/ledger.db absolute.
            return cls(kind="sqlite", sqlite_path=Path(raw[1:]))
        if parsed.scheme in ("postgresql", "postgres"):
            dbname = parsed.path.lstrip("/")
            if not dbname:
                raise ConfigError("PostgreSQL URL needs a database name")
            return cls(
                kind="postgres",
                postgres={
                    "host": parsed.hostname or "127.0.0.1",
                    "port": str(parsed.port or 5432),
                    "user": unquote(parsed.username or ""),
                    "password": unquote(parsed.password or ""),
                    "dbname": dbname,
                },
            )
        raise ConfigError(f"unsupported database URL {url!r} (use sqlite:///FILE or postgresql://...)")

    def event_store_env(self) -> dict[str, str]:
        """Environment for the eventsourcing library's infrastructure factory."""
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self._sqlite()),
                "APPLICATION_RECORDER_TOPIC": "ledger.adapters.sqlite:ChainedSQLiteRecorder",
            }
        pg = self.postgres
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": pg["dbname"],
            "POSTGRES_HOST": pg["host"],
            "POSTGRES_PORT": pg["port"],
            "POSTGRES_USER": pg["user"],
            "POSTGRES_PASSWORD": pg["password"],
            "POSTGRES_SCHEMA": "public",
            "POSTGRES_POOL_SIZE": "10",
            "POSTGRES_MAX_OVERFLOW": "20",
            "POSTGRES_LOCK_TIMEOUT": "10",
            # Fail fast while the database is down (callers get UNAVAILABLE and retry), and never hand out
            # a pooled connection that died with a database restart.
            "POSTGRES_CONNECT_TIMEOUT": "1",
            "POSTGRES_PRE_PING": "y",
            "APPLICATION_RECORDER_TOPIC": "ledger.adapters.postgres:ChainedPostgresRecorder",
        }

    def public_url(self) -> str:
        """Where the store is, as a URL without the password (safe to show and to log)."""
        if self.kind == "sqlite":
            return f"sqlite:///{self._sqlite()}"
        pg = self.postgres
        user = f"{quote(pg['user'], safe='')}@" if pg["user"] else ""
        return f"postgresql://{user}{pg['host']}:{pg['port']}/{quote(pg['dbname'], safe='')}"

    def conninfo(self) -> str:
        """A libpq connection string for the PostgreSQL store."""
        pg = self.postgres
        parts = [f"host={pg['host']}", f"port={pg['port']}", f"dbname={pg['dbname']}"]
        if pg["user"]:
            parts.append(f"user={pg['user']}")
        if pg["password"]:
            parts.append(f"password={pg['password']}")
        return " ".join(parts)

    def key_store_path(self) -> Path:
        """The key store sits beside the SQLite event database: ``ledger.db`` -> ``ledger.keys.db``."""
        path = self._sqlite()
        return path.with_name(path.stem + ".keys.db")

    def default_master_key_path(self) -> Path:
        """The generated master key of the embedded store: ``ledger.db`` -> ``ledger.master.key``."""
        path = self._sqlite()
        return path.with_name(path.stem + ".master.key")

    def default_head_key_path(self) -> Path:
        """The head-signing key of the embedded store: ``ledger.db`` -> ``ledger.head.key``."""
        path = self._sqlite()
        return path.with_name(path.stem + ".head.key")

    def views_path(self) -> Path:
        """The read models of the embedded store: ``ledger.db`` -> ``ledger.views.db``."""
        path = self._sqlite()
        return path.with_name(path.stem + ".views.db")

    def _sqlite(self) -> Path:
        if self.sqlite_path is None:
            raise ConfigError("this setting needs an SQLite store")
        return self.sqlite_path


@dataclass(frozen=True)
class Limits:
    """What one caller may hold, so that no caller starves the rest (each a ``LEDGER_*`` variable).

    Streams and waits hold no thread (the edge is asyncio): their budgets bound memory and the work done
    on their behalf; unary calls in progress (running or queued for the pool) are bounded per caller."""

    max_calls: int = 1024  # LEDGER_MAX_CALLS: unary calls in progress (running or queued) at once
    max_calls_per_caller: int = 128  # LEDGER_MAX_CALLS_PER_CALLER: per token's actor, or per peer address
    max_streams: int = 256  # LEDGER_MAX_STREAMS: streaming calls of the ledger's services at once
    max_streams_per_caller: int = 8  # LEDGER_MAX_STREAMS_PER_CALLER: streams (any kind) per caller
    max_feeds: int = 64  # LEDGER_MAX_FEEDS: StreamEvents feeds at once (each polls the store when idle)
    max_health_watches: int = 64  # LEDGER_MAX_HEALTH_WATCHES: open grpc.health.v1.Health/Watch streams
    max_reflection_streams: int = 64  # LEDGER_MAX_REFLECTION_STREAMS: open server-reflection streams
    max_waiting_checks: int = 256  # LEDGER_MAX_WAITING_CHECKS: checks waiting for min_position at once
    max_waiting_checks_per_caller: int = 16  # LEDGER_MAX_WAITING_CHECKS_PER_CALLER
    stream_work_per_caller: int = 2  # LEDGER_STREAM_WORK_PER_CALLER: streams' pieces of work in the pool
    stream_idle_seconds: float = 30.0  # LEDGER_STREAM_IDLE_SECONDS: BatchCheck/reflection with no request
    keepalive_seconds: float = 60.0  # LEDGER_KEEPALIVE_SECONDS: ping an idle connection this often
    connection_idle_seconds: float = 600.0  # LEDGER_CONNECTION_IDLE_SECONDS: close a connection with no call

    @classmethod
    def for_workers(cls, max_workers: int, env: Mapping[str, str] | None = None) -> Limits:
        """Defaults (unary calls per caller scaled to ``max_workers``), overridden by ``LEDGER_*`` variables."""
        env = env or {}
        defaults = {"max_calls_per_caller": max(64, 4 * max_workers)}
        values: dict[str, Any] = {}
        for name in (f.name for f in fields(cls)):
            raw = env.get(f"LEDGER_{name.upper()}")
            kind = float if name.endswith("_seconds") else int
            try:
                values[name] = kind(raw) if raw else defaults.get(name, getattr(cls, name))
            except ValueError:
                raise ConfigError(f"LEDGER_{name.upper()} must be a number, got {raw!r}") from None
            if values[name] <= 0:
                raise ConfigError(f"LEDGER_{name.upper()} must be positive")
        limits = cls(**values)
        for each, total in (
            ("max_calls_per_caller", "max_calls"),
            ("max_streams_per_caller", "max_streams"),
            ("max_waiting_checks_per_caller", "max_waiting_checks"),
        ):
            if getattr(limits, each) > getattr(limits, total):
                raise ConfigError(f"LEDGER_{each.upper()} must be at most LEDGER_{total.upper()}")
        return limits


@dataclass(frozen=True)
class Settings:
    """Everything the server needs, read once from arguments and the environment."""

    listen: str = DEFAULT_LISTEN
    # The HTTP port (CAMARA routes, Connect calls, OpenAPI) as HOST:PORT; None: not served.
    http_listen: str | None = None
    # Prometheus text at GET /metrics on this HOST:PORT (``serve --metrics``); None: no metrics port.
    metrics_listen: str | None = None
    # A worker of ``serve --workers N --metrics``: count into PROMETHEUS_MULTIPROC_DIR, the parent serves.
    metrics_shared: bool = False
    # How often such a worker writes its gauges (head, views, signed head, feeds) for the parent's scrape.
    metrics_interval_seconds: float = 5.0
    # One INFO line per call on the ``ledger.access`` logger (``serve --access-log on|off``).
    access_log: bool = True
    store: StoreConfig = field(default_factory=lambda: StoreConfig.from_url(DEFAULT_DB))
    policy: Policy = field(default_factory=Policy)
    master_key_file: Path | None = None
    master_key_text: str | None = None
    # This host's epoch key file (LEDGER_EPOCH_KEY_FILE); None: ``ledger.keys.epoch.default_path``.
    epoch_key_file: Path | None = None
    # Buckets of a new key store (LEDGER_KEY_BUCKETS); an existing store keeps the number it was made with.
    key_buckets: int = 4096
    # How often the key jobs run: epoch ends, following other hosts, the daily erasure pass.
    key_poll_seconds: float = 60.0
    max_workers: int = 32
    grace_seconds: float = 10.0
    # Run the projections inside the server process (the embedded default).
    run_projections: bool = True
    # Tokens and roles (None: loopback callers only, every role).
    auth_file: Path | None = None
    # TLS: certificate chain and key; with a client CA, clients must present a certificate (mutual TLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Save concurrent commands together (one transaction for many); LEDGER_GROUP_COMMIT=0 turns it off.
    group_commit: bool = True
    # Share the listening port with sibling processes (``serve --workers N``).
    reuse_port: bool = False
    # Answer recycling checks from this store's read models (a streaming replica of the primary).
    read_store: StoreConfig | None = None
    # Budgets per caller and per kind of stream (None: the defaults for max_workers).
    limits: Limits | None = None
    # The Ed25519 key that signs tree heads (LEDGER_HEAD_KEY_FILE; None: beside the master key file, or
    # derived from LEDGER_MASTER_KEY when that is how the master key is given).
    head_key_file: Path | None = None
    # Maintain the Merkle tree as events commit; LEDGER_MERKLE_TREE=0 turns it off (to measure its cost).
    merkle_tree: bool = True

    def stream_limits(self) -> Limits:
        """The limits in force: those given, else the defaults for ``max_workers``."""
        return self.limits or Limits.for_workers(self.max_workers)

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        if not 1 <= self.key_buckets <= 1_000_000:
            raise ConfigError("LEDGER_KEY_BUCKETS must be between 1 and 1000000")
        for path in (self.auth_file, self.tls_cert, self.tls_key, self.tls_client_ca):
            if path is not None and not path.is_file():
                raise ConfigError(f"{path} does not exist")

    @classmethod
    def build(
        cls,
        listen: str | None = None,
        db: str | None = None,
        policy_file: Path | None = None,
        master_key_file: Path | None = None,
        environ: dict[str, str] | None = None,
        auth_file: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_client_ca: Path | None = None,
    ) -> Settings:
        """Combine arguments with ``LEDGER_*`` environment variables (arguments win)."""
        env = os.environ if environ is None else environ
        policy_path = policy_file or (Path(env["LEDGER_POLICY"]) if env.get("LEDGER_POLICY") else None)
        key_file = master_key_file or (
            Path(env["LEDGER_MASTER_KEY_FILE"]) if env.get("LEDGER_MASTER_KEY_FILE") else None
        )
        return cls(
            listen=listen or env.get("LEDGER_LISTEN") or DEFAULT_LISTEN,
            store=StoreConfig.from_url(db or env.get("LEDGER_DB") or DEFAULT_DB),
            policy=Policy.from_toml(policy_path) if policy_path else Policy(),
            master_key_file=key_file,
            master_key_text=env.get("LEDGER_MASTER_KEY") or None,
            epoch_key_file=Path(env["LEDGER_EPOCH_KEY_FILE"]) if env.get("LEDGER_EPOCH_KEY_FILE") else None,
            key_buckets=int(env.get("LEDGER_KEY_BUCKETS") or 4096),
            key_poll_seconds=float(env.get("LEDGER_KEY_POLL_SECONDS") or 60.0),
            auth_file=auth_file or (Path(env["LEDGER_AUTH"]) if env.get("LEDGER_AUTH") else None),
            max_workers=int(env.get("LEDGER_MAX_WORKERS") or 32),
            limits=Limits.for_workers(int(env.get("LEDGER_MAX_WORKERS") or 32), env),
            group_commit=env.get("LEDGER_GROUP_COMMIT", "1").strip().lower() not in ("0", "false", "no", "off"),
            head_key_file=Path(env["LEDGER_HEAD_KEY_FILE"]) if env.get("LEDGER_HEAD_KEY_FILE") else None,
            merkle_tree=env.get("LEDGER_MERKLE_TREE", "1").strip().lower() not in ("0", "false", "no", "off"),
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_client_ca=tls_client_ca,
        )
