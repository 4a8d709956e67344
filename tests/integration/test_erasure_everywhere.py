"""Erasure holds on every copy: table files, WAL, a replica and a base backup taken before the erasure.

No database can be made to forget a row: the erased subscriber's wrapped data key may well survive in
those copies (the tests look for it, and on PostgreSQL find it). What must hold is that, once the
erasure epoch has ended, nothing the operator keeps (the master key and the current epoch key file)
opens any copy found; and that before the epoch ended it did (so these tests can fail).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from pathlib import Path
from uuid import UUID

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.application.commands import EraseSubscriberData, RegisterSubscriber
from ledger.application.pipeline import execute
from ledger.bootstrap import load_master_key, open_ledger
from ledger.config import Settings
from ledger.keys.crypto import KeyStoreError, MasterKey, bucket_aad, data_aad, unwrap
from ledger.keys.epoch import EpochFile, ratchet, wrapping_key
from ledger.keys.identity import identity_bucket
from ledger.keys.rotation import end_epoch
from ledger.keys.vault import TOKEN_PREFIX

STORES = ("sqlite", "postgres")
NAME = "Erased Zhenshiming"


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in sorted(root.rglob("*")) if p.is_file()]


def _holding(files: list[Path], needle: bytes) -> list[str]:
    """The files in which these exact bytes occur."""
    return [str(p) for p in files if needle in p.read_bytes()]


def _kept_wrapping_keys(epoch_file: Path, master: MasterKey) -> list[bytes]:
    """Every bucket-wrapping key computable from the files the operator keeps (this epoch and later)."""
    held = EpochFile(epoch_file).read()
    assert held is not None
    epoch, secret = held
    salt = master.derive("ledger/bucket-wrap-salt/v2")
    return [wrapping_key(ratchet(secret, k), epoch + k, salt) for k in range(4)]


def _opens(token: str, data_key: bytes, sid: UUID) -> bool:
    raw = __import__("base64").urlsafe_b64decode(token[len(TOKEN_PREFIX) :])
    try:
        AESGCM(data_key).decrypt(raw[:12], raw[12:], b"ledger/personal-data/v1/" + sid.bytes)
    except InvalidTag:
        return False
    return True


def _erased_record_opens(
    master: MasterKey,
    token: str,
    sid: UUID,
    bucket: int,
    data_key_copies: list[bytes],
    bucket_copies: list[bytes],
    kept: list[bytes],
) -> bool:
    """Try every copy found against every key kept (and the master key alone, the scheme before epochs)."""
    bucket_keys = []
    for wrapped in bucket_copies:
        for wrap_key in kept:
            for generation in range(4):
                with contextlib.suppress(KeyStoreError):
                    bucket_keys.append(unwrap(wrap_key, wrapped, bucket_aad(bucket, generation)))
    for wrapped in data_key_copies:
        candidates = []
        for bucket_key in bucket_keys:
            with contextlib.suppress(KeyStoreError):
                candidates.append(unwrap(bucket_key, wrapped, data_aad(sid)))
        with contextlib.suppress(KeyStoreError):
            candidates.append(master.unwrap(wrapped, sid.bytes))
        if any(_opens(token, key, sid) for key in candidates):
            return True
    return False


def _bucket_row(app, bucket: int) -> bytes:
    row, _epoch = app.vault.store.bucket(bucket)
    return bytes(row.wrapped)


def test_an_erased_key_found_in_every_copy_opens_with_nothing_kept_after_the_epoch(
    settings: Settings, tmp_path: Path, store_kind: str, request
) -> None:
    epoch_file = tmp_path / "host-a.epoch.key"
    settings = dataclasses.replace(settings, epoch_key_file=epoch_file, key_buckets=8)
    app = open_ledger(settings)
    master = load_master_key(settings)  # with the epoch file, all the operator keeps
    sids = []
    for i in range(24):
        result = execute(
            app,
            RegisterSubscriber(
                full_name=f"{NAME} {i}", id_type="PASSPORT", id_number=f"E{i:07d}", date_of_birth="1990-01-01"
            ),
            request_id=f"r{i}",
            actor="t",
        )
        sids.append(UUID(result.data["subscriber_id"]))
    victim = sids[0]
    bucket = app.vault.bucket_of(victim)
    survivors = [s for s in sids[1:] if app.vault.bucket_of(s) == bucket]
    assert survivors, "a survivor shares the victim's bucket, so its re-wrap is exercised"
    token = app.get_subscriber(victim).personal_data
    wrapped_data_key = app.vault.store.get(victim)
    assert wrapped_data_key is not None
    bucket_copies = [_bucket_row(app, bucket)]

    # Copies taken before the erasure: a base backup (PostgreSQL) or a file copy of the key store (SQLite),
    # and on PostgreSQL a streaming replica too.
    replica = None
    if store_kind == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        backup = cluster.base_backup()
        replica = cluster.replica()
        dbname = settings.store.postgres["dbname"]
        with psycopg.connect(cluster.admin_url(), autocommit=True) as conn:
            oid = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (dbname,)).fetchone()[0]

        def copies() -> list[Path]:
            roots = [cluster.data / "base" / str(oid), cluster.data / "pg_wal"]
            roots += [backup / "data" / "base" / str(oid), backup / "data" / "pg_wal"]
            roots += [replica.data / "base" / str(oid), replica.data / "pg_wal"]
            return _files(*roots)

        def checkpoint() -> None:
            with psycopg.connect(cluster.admin_url(), autocommit=True) as conn:
                lsn = conn.execute("SELECT pg_switch_wal()").fetchone()
                conn.execute("CHECKPOINT")
                lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            with psycopg.connect(replica.admin_url(), autocommit=True) as conn:
                deadline = time.monotonic() + 60
                while conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0] is not True:
                    assert time.monotonic() < deadline, "the replica did not catch up"
                    time.sleep(0.1)
                conn.execute("CHECKPOINT")
    else:
        backup = tmp_path / "backup"
        backup.mkdir()
        shutil.copy(settings.store.key_store_path(), backup)
        shutil.copy(settings.store.sqlite_path, backup)

        def copies() -> list[Path]:
            return _files(backup, *(p for p in tmp_path.iterdir() if p.is_file()))

        def checkpoint() -> None:
            pass

    try:
        assert _holding(copies(), wrapped_data_key), "the key is in the store before the erasure"
        execute(
            app, EraseSubscriberData(subscriber_id=victim, legal_basis="PIPL art. 47"), request_id="erase", actor="dpo"
        )
        assert app.vault.store.get(victim) is None
        checkpoint()

        # Before the epoch ends, what the operator keeps still opens a surviving copy: the reason for epochs.
        found = _holding(copies(), wrapped_data_key)
        assert found, "a copy survives the erasure (at least the backup taken before it)"
        kept_now = _kept_wrapping_keys(epoch_file, master)
        assert _erased_record_opens(master, token, victim, bucket, [wrapped_data_key], bucket_copies, kept_now)

        rotation = end_epoch(app.vault)
        # Marked: the data key's bucket and the identity salt's (the victim's salt died with the record).
        marked = {bucket, identity_bucket(app.vault, b"PASSPORT\x00E0000000")}
        assert rotation is not None and rotation.marked_buckets == len(marked)
        assert rotation.rewrapped_data_keys == sum(app.vault.bucket_of(s) in marked for s in sids[1:])
        bucket_copies.append(_bucket_row(app, bucket))
        checkpoint()

        found_after = _holding(copies(), wrapped_data_key)
        bucket_found = [c for c in bucket_copies if _holding(copies(), c)]
        assert found_after, "the erased key's bytes are still somewhere (a database cannot forget)"
        kept = _kept_wrapping_keys(epoch_file, master)
        assert not _erased_record_opens(
            master, token, victim, bucket, [wrapped_data_key], bucket_found + bucket_copies, kept
        )
        if store_kind == "postgres":
            # The replica followed the erasure and the rotation; the table files there are copies too.
            assert any("ledger-pg-backup-" in f for f in found_after)

        # The survivors of the re-keyed bucket still open, from a fresh process with the kept files only.
        app.close()
        app.vault.store.close()
        again = open_ledger(settings)
        try:
            for sid in survivors:
                data = again.vault.open(sid, again.get_subscriber(sid).personal_data)
                assert data is not None and data["full_name"].startswith(NAME)
            assert again.vault.open(victim, token) is None
        finally:
            again.close()
            again.vault.store.close()
    finally:
        if replica is not None:
            replica.stop()
        if store_kind == "postgres":
            shutil.rmtree(backup, ignore_errors=True)
