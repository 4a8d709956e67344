"""The vault: per-subscriber data keys under per-bucket keys under the epoch's key, and crypto-shredding.

Personal fields are sealed with AES-256-GCM under a data key of their own subscriber before they reach
an event. A data key is wrapped under the key of its bucket (a hash of the subscriber id modulo the
number of buckets); bucket keys are wrapped under the epoch's wrapping key, made of the host's epoch
secret and the master key. An erasure deletes the data key and marks its bucket; the epoch's end
(``ledger.keys.rotation``) gives each marked bucket a new key and ratchets the epoch secret, after which
no copy of the deleted key (table file, WAL, replica, backup) opens with anything that still exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.keys.crypto import KEY_BYTES, NONCE_BYTES, KeyStoreError, MasterKey, bucket_aad, data_aad, unwrap, wrap
from ledger.keys.epoch import EpochFile, MemoryEpochFile, check_value, wrapping_key
from ledger.keys.tables import BucketRow, EpochState, KeyTables, RowChange, StaleBucketError, Tx

log = logging.getLogger("ledger.keys")
TOKEN_PREFIX = "v1."
DEFAULT_BUCKETS = 4096
# How often a process looks for an epoch ended by another process (its keys then reload).
SYNC_SECONDS = 30.0
LEGACY_WRAPPED_BYTES = NONCE_BYTES + KEY_BYTES + 16


class PersonalDataVault:
    """Seals and opens personal data under per-subscriber keys; destroys keys on erasure."""

    def __init__(
        self,
        master: MasterKey,
        store: KeyTables,
        epoch_file: EpochFile | None = None,
        buckets: int = DEFAULT_BUCKETS,
        cache_size: int = 10_000,
    ) -> None:
        self.master = master
        self.store = store
        if epoch_file is None:
            path = getattr(store, "path", ":memory:")
            epoch_file = MemoryEpochFile() if path == ":memory:" else EpochFile(Path(path + ".epoch"))
        self.epoch_file = epoch_file
        self._cache: OrderedDict[UUID, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        # Counts destructions (and epoch changes): a key read before one is not cached after it.
        self._destroys = 0
        self._state_lock = threading.RLock()
        self._bucket_keys: dict[int, tuple[int, bytes]] = {}
        self._identity_secret = master.derive("ledger/identity-key/v1")
        self.identity_bucket_secret = master.derive("ledger/identity-bucket/v2")
        self._fingerprint_secret = master.derive("ledger/request-fingerprint/v1")
        self.master_salt = master.derive("ledger/bucket-wrap-salt/v2")
        self.epoch = -1
        self._secret = b""
        self._wrap_key = b""
        self._synced = 0.0
        self.buckets = buckets
        self.legacy_identities = True
        self._open(buckets)

    # -- epochs ------------------------------------------------------------------------------------------

    def _open(self, buckets: int) -> None:
        state = self.store.state()
        if state is None:
            self.store.initialise(lambda tx: self._first_state(tx, buckets))
            state = self.store.state()
            if state is None:
                raise KeyStoreError("the key store could not be set up for epochs")
        self.buckets = state.buckets
        self.legacy_identities = state.legacy
        self.adopt(state)

    def _first_state(
        self, tx: Tx, buckets: int
    ) -> tuple[EpochState, list[BucketRow], list[tuple[UUID, bytes, int]]] | None:
        """The store's first epoch, made with the store locked: bucket keys, and the data keys of a ledger
        from before epochs re-wrapped under them (the migration, once)."""
        if self.store.state(tx) is not None:
            return None
        held = self.epoch_file.read()
        if held is None:
            held = (0, os.urandom(KEY_BYTES))
            # Written before the store commits: a store whose secret no file holds would be lost.
            self.epoch_file.create(*held)
        epoch, secret = held
        wrap_key = wrapping_key(secret, epoch, self.master_salt)
        self.buckets = buckets
        keys = {b: os.urandom(KEY_BYTES) for b in range(buckets)}
        rows = [BucketRow(b, 0, wrap(wrap_key, k, bucket_aad(b, 0))) for b, k in keys.items()]
        rewrapped = []
        for sid, wrapped in self.store.legacy_keys(tx):
            data_key = self.master.unwrap(wrapped, sid.bytes)
            bucket = self.bucket_of(sid)
            rewrapped.append((sid, wrap(keys[bucket], data_key, data_aad(sid)), bucket))
        legacy = self.store.had_subscribers(tx)
        state = EpochState(epoch, buckets, check_value(wrap_key), int(time.time() * 1_000_000), legacy)
        return state, rows, rewrapped

    def adopt(self, state: EpochState) -> None:
        """Move to the store's epoch: ratchet this host's file forward to it and check the result."""
        with self._state_lock:
            self._synced = time.monotonic()
            if state.epoch == self.epoch:
                return
            secret = self.epoch_file.advance(state.epoch)
            wrap_key = wrapping_key(secret, state.epoch, self.master_salt)
            if not hmac.compare_digest(check_value(wrap_key), state.check):
                raise KeyStoreError(
                    f"the epoch key file {self.epoch_file.path} or the master key does not belong to this key store"
                )
            self.epoch, self._secret, self._wrap_key = state.epoch, secret, wrap_key
            self._bucket_keys.clear()
            with self._cache_lock:
                # Another process may have erased a subscriber whose key this one still holds.
                self._destroys += 1
                self._cache.clear()

    def sync(self) -> None:
        """Look for an epoch ended by another process, and follow it."""
        state = self.store.state()
        if state is not None:
            self.adopt(state)

    def follow(self) -> None:
        """Follow epochs ended by other processes every SYNC_SECONDS in a daemon thread, until the store is
        closed, so that this host's epoch file moves on even while the process reads no key."""

        def loop() -> None:
            while not self.store.closed:
                time.sleep(SYNC_SECONDS)
                if self.store.closed:
                    return
                try:
                    self.sync()
                except Exception:  # a store that is down: reads sync again themselves
                    log.debug("could not follow the key store's epoch; trying again", exc_info=True)

        threading.Thread(target=loop, name="key-epochs", daemon=True).start()

    def maybe_sync(self) -> None:
        """``sync`` at most every SYNC_SECONDS."""
        if time.monotonic() - self._synced >= SYNC_SECONDS:
            self.sync()

    def secrets(self) -> tuple[bytes, bytes]:
        """(epoch secret, wrapping key) of the current epoch (the rotation needs them)."""
        with self._state_lock:
            return self._secret, self._wrap_key

    def install(self, epoch: int, secret: bytes, wrap_key: bytes, keys: dict[int, tuple[int, bytes]]) -> None:
        """Take the keys of an epoch this process just ended (the file was advanced already)."""
        with self._state_lock:
            self.epoch, self._secret, self._wrap_key = epoch, secret, wrap_key
            self._bucket_keys = dict(keys)
            self._synced = time.monotonic()

    # -- buckets -------------------------------------------------------------------------------------------

    def bucket_of(self, subscriber_id: UUID) -> int:
        """The bucket of a subscriber's data key (not secret: it only spreads keys over buckets)."""
        digest = hashlib.sha256(b"ledger/bucket/" + subscriber_id.bytes).digest()
        return int.from_bytes(digest[:8], "big") % self.buckets

    def bucket_key(self, row: BucketRow, epoch: int) -> bytes:
        """A bucket key from its stored row, read in ``epoch``; cached by generation."""
        with self._state_lock:
            cached = self._bucket_keys.get(row.bucket)
            if cached is not None and cached[0] == row.generation and epoch == self.epoch:
                return cached[1]
            if epoch != self.epoch:
                self.sync()
                if epoch != self.epoch:
                    raise StaleBucketError(f"bucket {row.bucket} was read in epoch {epoch}, now {self.epoch}")
            key = unwrap(self._wrap_key, row.wrapped, bucket_aad(row.bucket, row.generation))
            self._bucket_keys[row.bucket] = (row.generation, key)
            return key

    def _current_bucket(self, bucket: int) -> tuple[int, bytes]:
        with self._state_lock:
            cached = self._bucket_keys.get(bucket)
        if cached is not None:
            return cached
        row, epoch = self.store.bucket(bucket)
        return row.generation, self.bucket_key(row, epoch)

    # -- keyed hashes ----------------------------------------------------------------------------------------

    def legacy_identity_key(self, id_type: str, id_number: str) -> str:
        """The identity key of the scheme before salts: HMAC under a master-derived secret."""
        message = f"{id_type}\x00{id_number}".encode()
        return hmac.new(self._identity_secret, message, hashlib.sha256).hexdigest()

    def fingerprint(self, payload: bytes) -> str:
        """Keyed hash of a request's content; keyed so personal data cannot be guessed from it."""
        return hmac.new(self._fingerprint_secret, payload, hashlib.sha256).hexdigest()

    # -- data keys -----------------------------------------------------------------------------------------

    def create_key(self, subscriber_id: UUID) -> bytes:
        """Make and store a data key for a new subscriber; the key stored (an earlier one if any)."""
        return self.store_keys([self.new_key(subscriber_id)])[subscriber_id]

    def new_key(self, subscriber_id: UUID) -> tuple[UUID, bytes]:
        """Make a fresh data key, not yet usable: nothing may be sealed under it before ``store_keys`` has
        stored it and returned the key in force (another writer's may have been stored first)."""
        return subscriber_id, os.urandom(KEY_BYTES)

    def store_keys(self, keys: list[tuple[UUID, bytes]], changes: Sequence[RowChange] = ()) -> dict[UUID, bytes]:
        """Wrap new data keys under their buckets' current keys and store them, with other key-store changes
        (identity salts), in one transaction; each only where its subscriber has no key yet. Returns, once
        committed, the key in force for each subscriber (its own, or the one stored before): the only one to
        seal under. Nothing is cached unless it is committed, so a failed store leaves nothing a retry could use."""

        def write_changes(tx: Tx) -> None:
            for change in changes:
                change.write(self.store, tx)

        also = write_changes if changes else None
        for attempt in range(5):
            rows, generations, bucket_keys = [], {}, {}
            for sid, data_key in keys:
                bucket = self.bucket_of(sid)
                generation, bucket_key = self._current_bucket(bucket)
                rows.append((sid, wrap(bucket_key, data_key, data_aad(sid)), bucket))
                generations[bucket] = generation
                bucket_keys[sid] = bucket_key
            with self._cache_lock:
                seen = self._destroys
            try:
                stored = self.store.put_many(rows, generations, also)
            except StaleBucketError:
                # Another process ended the epoch and re-keyed one of these buckets: wrap again.
                if attempt == 4:
                    raise
                self.sync()
                with self._state_lock:
                    for bucket in generations:
                        self._bucket_keys.pop(bucket, None)
                continue
            # Within the transaction the buckets' generations were the ones wrapped under: a key stored
            # before is wrapped under the same bucket keys.
            mine, ours = dict(keys), {sid: wrapped for sid, wrapped, _ in rows}
            in_force = {}
            for sid, wrapped in stored.items():
                key = mine[sid] if wrapped == ours[sid] else unwrap(bucket_keys[sid], wrapped, data_aad(sid))
                self._remember(sid, key, seen)
                in_force[sid] = key
            return in_force
        raise KeyStoreError("the data keys could not be stored")

    def seal(self, subscriber_id: UUID, data: dict[str, Any], data_key: bytes | None = None) -> str:
        """Encrypt personal data under the subscriber's stored key (or ``data_key``, the key in force that
        ``store_keys`` returned); returns a text token for the event."""
        if data_key is None:
            data_key = self._data_key(subscriber_id)
        if data_key is None:
            raise KeyStoreError(f"no data key for subscriber {subscriber_id}")
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(data_key).encrypt(nonce, orjson.dumps(data), _aad(subscriber_id))
        return TOKEN_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, subscriber_id: UUID, token: str) -> dict[str, Any] | None:
        """Decrypt personal data, or None when the subscriber's key was destroyed (erased)."""
        data_key = self._data_key(subscriber_id)
        if data_key is None:
            return None
        if not token.startswith(TOKEN_PREFIX):
            raise KeyStoreError("unknown personal data token format")
        raw = base64.urlsafe_b64decode(token[len(TOKEN_PREFIX) :])
        try:
            plain = AESGCM(data_key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(subscriber_id))
        except InvalidTag as e:
            raise KeyStoreError(f"personal data of {subscriber_id} does not open with its key") from e
        result: dict[str, Any] = orjson.loads(plain)
        return result

    def has_key(self, subscriber_id: UUID) -> bool:
        """Whether the subscriber's data key is stored (the cache holds only stored keys)."""
        return self._data_key(subscriber_id) is not None

    def stored_key(self, subscriber_id: UUID) -> bytes | None:
        """The subscriber's stored data key, or None when none is stored (never made, or destroyed)."""
        return self._data_key(subscriber_id)

    def destroy(self, subscriber_id: UUID) -> None:
        """Crypto-shred: forget the key in memory, delete it from the store and mark its bucket."""
        self._forget(subscriber_id)
        self.store.destroy(subscriber_id, self.bucket_of(subscriber_id))
        # A reader that read the key before the delete must not cache it after: see ``_remember``.
        self._forget(subscriber_id)

    def _forget(self, subscriber_id: UUID) -> None:
        with self._cache_lock:
            self._destroys += 1
            self._cache.pop(subscriber_id, None)

    def _data_key(self, subscriber_id: UUID) -> bytes | None:
        with self._cache_lock:
            cached = self._cache.get(subscriber_id)
            if cached is not None:
                self._cache.move_to_end(subscriber_id)
                return cached
        self.maybe_sync()
        for attempt in range(5):
            with self._cache_lock:
                seen = self._destroys
            found = self.store.get_with_bucket(subscriber_id, self.bucket_of(subscriber_id))
            if found is None:
                return None
            wrapped, row, epoch = found
            try:
                data_key = unwrap(self.bucket_key(row, epoch), wrapped, data_aad(subscriber_id))
            except StaleBucketError:
                if attempt == 4:
                    raise KeyStoreError(f"the key store kept changing epochs while reading {subscriber_id}") from None
                continue
            except KeyStoreError:
                raise KeyStoreError(f"the data key of {subscriber_id} does not open with this host's keys") from None
            self._remember(subscriber_id, data_key, seen)
            return data_key
        return None

    def _remember(self, subscriber_id: UUID, data_key: bytes, seen: int) -> None:
        """Cache a key read from (or committed to) the store, unless a key was destroyed (or the epoch
        changed) since ``seen`` was taken before that read: the read may be older than the destruction."""
        with self._cache_lock:
            if self._destroys != seen:
                return
            self._cache[subscriber_id] = data_key
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _aad(subscriber_id: UUID) -> bytes:
    return b"ledger/personal-data/v1/" + subscriber_id.bytes
