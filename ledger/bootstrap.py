"""Builds the application from settings: event store, key store, master key and policy."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ledger.adapters.postgres import PostgresKeyStore
from ledger.adapters.sqlite import SQLiteKeyStore
from ledger.application import Clock, LedgerApplication
from ledger.config import ConfigError
from ledger.vault import KeyStore, KeyStoreError, MasterKey, PersonalDataVault
from projections.db import ViewsDatabase
from projections.projector import Projector

if TYPE_CHECKING:
    from ledger.config import Settings
    from projections.views import View


def load_master_key(settings: Settings) -> MasterKey:
    """The operator's key from LEDGER_MASTER_KEY or a key file; generated beside an embedded store."""
    if settings.master_key_text:
        return _master_key(settings.master_key_text, "LEDGER_MASTER_KEY")
    if settings.master_key_file is not None:
        if not settings.master_key_file.exists():
            raise ConfigError(f"master key file {settings.master_key_file} does not exist")
        return _master_key(settings.master_key_file.read_text(), f"master key file {settings.master_key_file}")
    if settings.store.kind != "sqlite":
        raise ConfigError("a PostgreSQL store needs the operator's master key: LEDGER_MASTER_KEY or --master-key-file")
    return MasterKey.load_or_create(settings.store.default_master_key_path())


def _master_key(text: str, source: str) -> MasterKey:
    try:
        return MasterKey.from_text(text)
    except KeyStoreError as e:
        raise ConfigError(f"{source}: {e} (the master key is 32 bytes in base64)") from None


def short_reconnects() -> None:
    """Make the PostgreSQL pools retry after 50 ms, not 1 s.

    After a database restart every pooled connection is dead. The pool finds that out one connection at
    a time (its pre-ping check) and waits between two checks, and between two reconnection attempts, with
    a backoff that starts at a second: the first call after a restart waited about that long, or failed
    when its connection timeout (1 s) came first. From 50 ms the backoff still doubles while the database
    stays down, so a long outage costs no more attempts than before, a few more at its start."""
    from psycopg_pool.base import AttemptWithBackoff

    AttemptWithBackoff.INITIAL_DELAY = 0.05


def open_ledger(settings: Settings, clock: Clock | None = None) -> LedgerApplication:
    """Open (creating on first use) the ledger's stores and return the application."""
    db_path = settings.store.sqlite_path
    if db_path is not None and not db_path.parent.is_dir():
        # A mistyped path must not look like lost data: a new ledger only in a folder that exists.
        raise ConfigError(
            f"the folder {db_path.parent} of the database {db_path} does not exist "
            "(check --db or LEDGER_DB; create the folder first for a new ledger there)"
        )
    master = load_master_key(settings)
    if settings.store.kind == "postgres":
        short_reconnects()
    store: KeyStore
    if settings.store.kind == "sqlite":
        store = SQLiteKeyStore(str(settings.store.key_store_path()))
    else:
        store = PostgresKeyStore(settings.store.conninfo())
    vault = PersonalDataVault(master, store)
    env = {f"LEDGER_{k}": v for k, v in settings.store.event_store_env().items()}
    return LedgerApplication(
        env=env, vault=vault, policy=settings.policy, clock=clock, group_commit=settings.group_commit
    )


def open_projector(settings: Settings, app: LedgerApplication, views: list[View] | None = None) -> Projector:
    """The projector that feeds the read models (all, or ``views``) from this ledger (creates their tables)."""
    projector = Projector(app.recorder, app.mapper, ViewsDatabase.for_store(settings.store), views)
    app.commit_listeners.append(lambda _position: projector.wake.set())
    return projector


def start_projections(settings: Settings, projector: Projector, stop: threading.Event) -> list[threading.Thread]:
    """Run the projector (and, on PostgreSQL, its LISTEN wake-ups) in background threads until ``stop``."""
    threads = [threading.Thread(target=projector.run, args=(stop,), name="projector", daemon=True)]
    if settings.store.kind == "postgres":
        channel = projector.recorder.events_table_name  # type: ignore[attr-defined]
        threads.append(
            threading.Thread(
                target=projector.listen, args=(settings.store.conninfo(), channel, stop), name="listen", daemon=True
            )
        )
    for thread in threads:
        thread.start()
    return threads


def migrate(settings: Settings) -> str:
    """Create every table the ledger needs (idempotent); returns a summary."""
    app = open_ledger(settings)
    try:
        projector = open_projector(settings, app)
        projector.close()
        return f"schema ready: events and hash chain, data keys, read models; at position {app.reader.max_position()}"
    finally:
        app.close()
        app.vault.store.close()
