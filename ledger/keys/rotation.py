"""The end of an erasure epoch: re-key the marked buckets, ratchet the epoch secret.

Work: the surviving keys of the buckets that had an erasure (data keys and identity salts), plus one
small row per bucket re-wrapped under the next epoch's key. Afterwards the old bucket keys of marked
buckets exist nowhere, and the old epoch secret only in files the operator must destroy (docs/privacy.md).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from ledger.keys.crypto import KEY_BYTES, KeyStoreError, bucket_aad, data_aad, unwrap, wrap
from ledger.keys.epoch import check_value, next_secret, wrapping_key
from ledger.keys.identity import rekey_salts
from ledger.keys.tables import Tx

if TYPE_CHECKING:
    from ledger.keys.vault import PersonalDataVault


@dataclass(frozen=True)
class Rotation:
    """What ending an epoch did."""

    epoch: int
    marked_buckets: int
    rewrapped_data_keys: int
    rewrapped_salts: int
    buckets: int
    seconds: float


def end_epoch(vault: PersonalDataVault, due_seconds: float | None = None) -> Rotation | None:
    """End the current epoch now (any process, any host), or, with ``due_seconds``, only if it has
    lasted that long (checked under the store's lock, so that of several processes one ends it)."""
    started = time.monotonic()
    store = vault.store
    t = store.t

    def work(tx: Tx) -> tuple[Rotation, bytes, bytes, dict[int, tuple[int, bytes]]] | None:
        state = store.state(tx)
        if state is None:
            raise KeyStoreError("the key store has no epoch yet (open the ledger once)")
        if due_seconds is not None and time.time() - state.started_us / 1_000_000 < due_seconds:
            return None
        vault.adopt(state)
        secret, wrap_key = vault.secrets()
        epoch = state.epoch + 1
        next_epoch_secret = next_secret(secret)
        next_wrap = wrapping_key(next_epoch_secret, epoch, vault.master_salt)
        keys = {
            int(b): (int(g), unwrap(wrap_key, bytes(w), bucket_aad(int(b), int(g))))
            for b, g, w in tx.execute(f"SELECT bucket, generation, wrapped FROM {t('bucket_keys')}")
        }
        marked = sorted(int(r[0]) for r in tx.execute(f"SELECT bucket FROM {t('marked_buckets')}"))
        data_keys = salts = 0
        for bucket in marked:
            generation, old = keys[bucket]
            new = os.urandom(KEY_BYTES)
            keys[bucket] = (generation + 1, new)
            rows = tx.execute(f"SELECT subscriber_id, wrapped_key FROM {t('data_keys')} WHERE bucket = ?", (bucket,))
            updates = []
            for sid, wrapped in rows:
                subscriber_id = UUID(str(sid))
                data_key = unwrap(old, bytes(wrapped), data_aad(subscriber_id))
                updates.append((wrap(new, data_key, data_aad(subscriber_id)), sid))
            tx.executemany(f"UPDATE {t('data_keys')} SET wrapped_key = ? WHERE subscriber_id = ?", updates)
            data_keys += len(updates)
            salts += rekey_salts(vault, tx, bucket, old, new)
        tx.executemany(
            f"UPDATE {t('bucket_keys')} SET generation = ?, wrapped = ? WHERE bucket = ?",
            [(g, wrap(next_wrap, k, bucket_aad(b, g)), b) for b, (g, k) in keys.items()],
        )
        tx.execute(
            f"UPDATE {t('key_state')} SET epoch = ?, check_value = ?, started_us = ? WHERE id = 1",
            (epoch, check_value(next_wrap), int(time.time() * 1_000_000)),
        )
        tx.execute(f"DELETE FROM {t('marked_buckets')}")
        report = Rotation(epoch, len(marked), data_keys, salts, len(keys), 0.0)
        return report, next_epoch_secret, next_wrap, keys

    done = store.in_write(work)
    if done is None:
        return None
    report, secret, next_wrap, keys = done
    # After the commit: a crash here leaves the file one epoch behind, and the next start ratchets it.
    vault.epoch_file.advance(report.epoch)
    vault.install(report.epoch, secret, next_wrap, keys)
    vacuum = getattr(store, "vacuum", None)
    if vacuum is not None:
        vacuum()
    return Rotation(**{**report.__dict__, "seconds": time.monotonic() - started})
