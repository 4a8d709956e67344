"""Identity keys that die with the last record of a person.

The identity key (which counts the numbers one person holds, across their subscriber records) is
``HMAC(salt, id_type || id_number)`` under a random salt of that identity. The salt lives in the key
store, sealed under the key of the identity's bucket together with the identity itself and the
subscriber records that use it, found by a tag that is a keyed hash under a key derived from that same
bucket key. When the last live record of the identity is erased, the salt's row is deleted and its
bucket marked: at the epoch's end the bucket key changes, the surviving rows get new tags, and every
copy of the old row (table file, WAL, backup) stops opening. From then on neither the identity keys in
the registration and holdings events nor the old tag can be tied to an ID number, even by guessing
ID numbers with the master key. While any record of the person lives, the salt stays and the cap keeps
counting across their records.

An identity first registered before salts (its holdings stream exists under the master-derived key)
keeps that key, so that the cap still counts its open tenures; its erasure cannot unlink it (docs/privacy.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError

from ledger.keys.crypto import KEY_BYTES, hkdf, unwrap, wrap
from ledger.keys.tables import BucketRow, KeyTables, StaleBucketError, Tx

if TYPE_CHECKING:
    from ledger.keys.vault import PersonalDataVault


def _identity(id_type: str, id_number: str) -> bytes:
    return f"{id_type}\x00{id_number}".encode()


def tag_of(bucket_key: bytes, identity: bytes) -> bytes:
    """The lookup tag of an identity's salt row: changes whenever its bucket key does."""
    return hmac.new(hkdf(bucket_key, "ledger/identity-tag/v2"), identity, hashlib.sha256).digest()


def salt_aad(tag: bytes) -> bytes:
    """What a salt row's sealing is bound to."""
    return b"ledger/identity-salt/v2/" + tag


def identity_bucket(vault: PersonalDataVault, identity: bytes) -> int:
    """The identity's bucket: a keyed hash modulo the number of buckets (thousands of people share one)."""
    digest = hmac.new(vault.identity_bucket_secret, identity, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % vault.buckets


def _locked_row(vault: PersonalDataVault, tx: Tx, identity: bytes) -> tuple[int, bytes, bytes, dict[str, Any] | None]:
    """(bucket, bucket key, tag, row content or None), read under the store's write lock."""
    bucket = identity_bucket(vault, identity)
    t = vault.store.t
    rows = tx.execute(
        f"SELECT b.generation, b.wrapped, s.epoch FROM {t('bucket_keys')} b, {t('key_state')} s "
        "WHERE b.bucket = ? AND s.id = 1",
        (bucket,),
    )
    key = vault.bucket_key(BucketRow(bucket, int(rows[0][0]), bytes(rows[0][1])), int(rows[0][2]))
    tag = tag_of(key, identity)
    found = tx.execute(f"SELECT wrapped FROM {t('identity_salts')} WHERE tag = ?", (tag,))
    content = orjson.loads(unwrap(key, bytes(found[0][0]), salt_aad(tag))) if found else None
    return bucket, key, tag, content


def _read_row(vault: PersonalDataVault, identity: bytes) -> tuple[int, BucketRow, bytes, bytes, dict[str, Any] | None]:
    """(bucket, bucket row, bucket key, tag, row content or None) of an identity's salt row, read without
    the write lock (a bucket re-keyed meanwhile is read again)."""
    bucket = identity_bucket(vault, identity)
    for attempt in range(5):
        row, epoch = vault.store.bucket(bucket)
        try:
            key = vault.bucket_key(row, epoch)
            break
        except StaleBucketError:
            if attempt == 4:
                raise
    tag = tag_of(key, identity)
    found = vault.store.in_read(
        lambda tx: tx.execute(f"SELECT wrapped FROM {vault.store.t('identity_salts')} WHERE tag = ?", (tag,))
    )
    content = orjson.loads(unwrap(key, bytes(found[0][0]), salt_aad(tag))) if found else None
    return bucket, row, key, tag, content


def _put(tables: KeyTables, tx: Tx, bucket: int, key: bytes, tag: bytes, content: dict[str, Any]) -> None:
    tx.execute(
        f"INSERT INTO {tables.t('identity_salts')} (tag, bucket, wrapped) VALUES (?, ?, ?) "
        "ON CONFLICT (tag) DO UPDATE SET wrapped = excluded.wrapped",
        (tag, bucket, wrap(key, orjson.dumps(content), salt_aad(tag))),
    )


class SaltConflictError(IntegrityError):
    """Raised when a salt row changed between reading it and writing it (the command is run again)."""


@dataclass(frozen=True)
class SaltChange:
    """A salt row to write with the next data keys (one transaction): a new identity's salt, or a record
    added to an identity's users. Checked again under the store's lock when written."""

    bucket: int
    generation: int
    bucket_key: bytes
    tag: bytes
    content: dict[str, Any]
    is_new: bool

    def write(self, tables: KeyTables, tx: Tx) -> None:
        """Write the planned row under the store's lock, refusing it when another writer overtook it."""
        if tables.generations(tx, [self.bucket]).get(self.bucket) != self.generation:
            raise SaltConflictError(f"bucket {self.bucket} was re-keyed while an identity was looked up")
        found = tx.execute(f"SELECT wrapped FROM {tables.t('identity_salts')} WHERE tag = ?", (self.tag,))
        content = self.content
        if found:
            current = orjson.loads(unwrap(self.bucket_key, bytes(found[0][0]), salt_aad(self.tag)))
            if self.is_new or current["salt"] != content["salt"]:
                raise SaltConflictError("an identity's salt was created by another writer meanwhile")
            members = list(dict.fromkeys([*current["members"], *content["members"]]))
            content = {**current, "members": members}
        elif not self.is_new:
            raise SaltConflictError("an identity's salt was destroyed by an erasure meanwhile")
        _put(tables, tx, self.bucket, self.bucket_key, self.tag, content)


def plan_identity(
    vault: PersonalDataVault,
    id_type: str,
    id_number: str,
    subscriber_id: UUID,
    legacy_in_use: Callable[[str], bool],
) -> tuple[str, SaltChange | None]:
    """The identity key of a subscriber being registered, and the salt row change that records them as
    a user of it (None when already recorded). ``legacy_in_use(key)`` says whether the ledger already
    counts this identity under its pre-salt key."""
    identity = _identity(id_type, id_number)
    bucket, row, key, tag, found = _read_row(vault, identity)
    if found is not None:
        content = found
    else:
        # Only a store that had subscribers before salts can hold identities counted under the old key.
        legacy = vault.legacy_identities and legacy_in_use(vault.legacy_identity_key(id_type, id_number))
        salt = None if legacy else base64.b64encode(os.urandom(KEY_BYTES)).decode()
        content = {"salt": salt, "id": [id_type, id_number], "members": []}
    change = None
    if str(subscriber_id) not in content["members"]:
        content = {**content, "members": [*content["members"], str(subscriber_id)]}
        change = SaltChange(bucket, row.generation, key, tag, content, is_new=found is None)
    salt_text: str | None = content["salt"]
    if salt_text is None:
        return vault.legacy_identity_key(id_type, id_number), change
    return hmac.new(base64.b64decode(salt_text), identity, hashlib.sha256).hexdigest(), change


def find_identity_key(vault: PersonalDataVault, id_type: str, id_number: str) -> str | None:
    """The identity key an ID document is counted under, looked up without writing anything: from its
    salt row (under the bucket key of the current epoch), else, on a store that had subscribers before
    salts, the pre-salt key; None when no live record of this ID document exists (never registered, or
    every record of it erased: its salt is gone). Only keyed hashes are compared, never stored ID numbers."""
    identity = _identity(id_type, id_number)
    found = _read_row(vault, identity)[4]
    if found is None:
        return vault.legacy_identity_key(id_type, id_number) if vault.legacy_identities else None
    salt_text: str | None = found["salt"]
    if salt_text is None:
        return vault.legacy_identity_key(id_type, id_number)
    return hmac.new(base64.b64decode(salt_text), identity, hashlib.sha256).hexdigest()


def identity_key(
    vault: PersonalDataVault,
    id_type: str,
    id_number: str,
    subscriber_id: UUID,
    legacy_in_use: Callable[[str], bool],
) -> str:
    """``plan_identity`` with its change written at once."""
    key, change = plan_identity(vault, id_type, id_number, subscriber_id, legacy_in_use)
    if change is not None:
        vault.store_keys([], [change])
    return key


def release_identity(
    vault: PersonalDataVault, id_type: str, id_number: str, subscriber_id: UUID, is_live: Callable[[UUID], bool]
) -> bool:
    """An erased record stops using its identity's salt; the salt is destroyed (its row deleted, its
    bucket marked) when no live record uses it. True when it was destroyed."""
    identity = _identity(id_type, id_number)

    def work(tx: Tx) -> bool:
        bucket, key, tag, content = _locked_row(vault, tx, identity)
        if content is None:
            return False
        others = [m for m in content["members"] if m != str(subscriber_id) and is_live(UUID(m))]
        if others:
            content["members"] = others
            _put(vault.store, tx, bucket, key, tag, content)
            return False
        tx.execute(f"DELETE FROM {vault.store.t('identity_salts')} WHERE tag = ?", (tag,))
        tx.execute(
            f"INSERT INTO {vault.store.t('marked_buckets')} (bucket) VALUES (?) ON CONFLICT DO NOTHING", (bucket,)
        )
        return True

    return vault.store.in_write(work)


def rekey_salts(vault: PersonalDataVault, tx: Tx, bucket: int, old_key: bytes, new_key: bytes) -> int:
    """Re-seal a re-keyed bucket's salt rows under its new key, with new tags; how many."""
    t = vault.store.t
    rows = tx.execute(f"SELECT tag, wrapped FROM {t('identity_salts')} WHERE bucket = ?", (bucket,))
    for tag, wrapped in rows:
        content = orjson.loads(unwrap(old_key, bytes(wrapped), salt_aad(bytes(tag))))
        new_tag = tag_of(new_key, _identity(*content["id"]))
        tx.execute(f"DELETE FROM {t('identity_salts')} WHERE tag = ?", (bytes(tag),))
        _put(vault.store, tx, bucket, new_key, new_tag, content)
    return len(rows)
