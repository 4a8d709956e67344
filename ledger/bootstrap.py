"""Builds the application from settings: event store, key store, master key and policy."""

from __future__ import annotations

import base64
import threading
from typing import TYPE_CHECKING

from ledger.application import Clock, LedgerApplication
from ledger.application.key_jobs import KeyMaintenance
from ledger.keys import EpochFile, KeyStore, KeyStoreError, MasterKey, PersonalDataVault
from ledger.keys.epoch import default_path as default_epoch_path
from ledger.keys.stores import PostgresKeyStore, SQLiteKeyStore
from ledger.policy import ConfigError
from ledger.proofs.batches import TREE_OFF
from ledger.proofs.heads import HeadSigner
from projections.db import ViewsDatabase
from projections.projector import Projector
from projections.seal import ROW_KEY_LABEL, RowSeal

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


def load_head_signer(settings: Settings) -> HeadSigner:
    """The head-signing key: LEDGER_HEAD_KEY_FILE; else a file beside the master key file (or the
    embedded store), generated on first use; else derived from LEDGER_MASTER_KEY."""
    if settings.head_key_file is not None:
        return HeadSigner.load_or_create(settings.head_key_file)
    if settings.master_key_text:
        load_master_key(settings)  # the same checks and message as for the master key itself
        text = settings.master_key_text.strip().replace("+", "-").replace("/", "_")
        return HeadSigner.derived(base64.urlsafe_b64decode(text + "=="))
    if settings.master_key_file is not None:
        path = settings.master_key_file
        return HeadSigner.load_or_create(path.with_name(path.name.removesuffix(".master.key") + ".head.key"))
    if settings.store.kind != "sqlite":
        raise ConfigError("a PostgreSQL store needs the operator's master key: LEDGER_MASTER_KEY or --master-key-file")
    return HeadSigner.load_or_create(settings.store.default_head_key_path())


def short_reconnects() -> None:
    """Make the PostgreSQL pools retry after 50 ms, not 1 s.

    After a database restart every pooled connection is dead. The pool finds that out one connection at
    a time (its pre-ping check) and waits between two checks, and between two reconnection attempts, with
    a backoff that starts at a second: the first call after a restart waited about that long, or failed
    when its connection timeout (1 s) came first. From 50 ms the backoff still doubles while the database
    stays down, so a long outage costs no more attempts than before, a few more at its start."""
    from psycopg_pool.base import AttemptWithBackoff

    AttemptWithBackoff.INITIAL_DELAY = 0.05


def open_ledger(settings: Settings, clock: Clock | None = None, *, migrating: bool = False) -> LedgerApplication:
    """Open (creating on first use) the ledger's stores and return the application. With the Merkle tree
    off, the store must record that it was turned off on purpose (``ledger migrate`` does), or events
    past the tree would read as forged."""
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
    epoch_path = settings.epoch_key_file or default_epoch_path(settings.store)
    try:
        vault = PersonalDataVault(master, store, EpochFile(epoch_path), buckets=settings.key_buckets)
    except KeyStoreError as e:
        store.close()
        raise ConfigError(str(e)) from None
    vault.follow()
    env = {f"LEDGER_{k}": v for k, v in settings.store.event_store_env().items()}
    if not settings.merkle_tree:
        kind = "SQLite" if settings.store.kind == "sqlite" else "Postgres"
        env["LEDGER_APPLICATION_RECORDER_TOPIC"] = f"ledger.adapters.{settings.store.kind}:Untreed{kind}Recorder"
    app = LedgerApplication(
        env=env, vault=vault, policy=settings.policy, clock=clock, group_commit=settings.group_commit
    )
    if not settings.merkle_tree and not migrating and TREE_OFF not in app.batches.marks():
        app.close()
        store.close()
        raise ConfigError("LEDGER_MERKLE_TREE=0: record it in the store first with `ledger migrate` (same setting)")
    return app


def row_seal(app: LedgerApplication) -> RowSeal:
    """The keyed hashes of the view rows answers read: under a key derived from the master key, which the
    views database never holds."""
    return RowSeal(app.vault.master.derive(ROW_KEY_LABEL))


def open_projector(settings: Settings, app: LedgerApplication, views: list[View] | None = None) -> Projector:
    """The projector that feeds the read models (all, or ``views``) from this ledger (creates their tables)."""
    projector = Projector(app.recorder, app.mapper, ViewsDatabase.for_store(settings.store), row_seal(app), views)
    app.commit_listeners.append(projector.committed)
    return projector


def key_jobs(settings: Settings, app: LedgerApplication) -> KeyMaintenance:
    """The key jobs of this ledger (erasure epochs, the daily pass over due erasures), not yet started."""
    return KeyMaintenance(app, settings.policy, settings.key_poll_seconds)


def start_projections(
    settings: Settings, projector: Projector, keys: KeyMaintenance, stop: threading.Event
) -> list[threading.Thread]:
    """Run the projector (and, on PostgreSQL, its LISTEN wake-ups) and the key jobs in background threads
    until ``stop``. The key jobs run in the process that runs the projections (the server, or ``ledger
    project``): one such process per deployment, without a second start-up path."""
    threads = [
        threading.Thread(target=projector.run, args=(stop,), name="projector", daemon=True),
        threading.Thread(target=keys.run, args=(stop,), name="keys", daemon=True),
    ]
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
    app = open_ledger(settings, migrating=True)
    try:
        projector = open_projector(settings, app)
        projector.close()
        catch_up = getattr(app.recorder, "catch_up_tree", None)
        added = catch_up() if catch_up is not None and settings.merkle_tree else 0
        tree = f"Merkle tree (+{added} leaves)" if added else "Merkle tree"
        if settings.merkle_tree:
            app.batches.drop_mark(TREE_OFF)
        else:  # recorded, never inferred: events past the tree are then not taken for forged ones
            app.batches.record_mark(TREE_OFF, app.batch_key.mark(TREE_OFF, app.reader.max_position() + 1))
            tree = "Merkle tree turned off"
        return (
            f"schema ready: events and hash chain, {tree}, data keys, read models; "
            f"at position {app.reader.max_position()}; batches authenticated from position "
            f"{app.recorder.batch_writer.start}"  # type: ignore[attr-defined]
        )
    finally:
        app.close()
        app.vault.store.close()
