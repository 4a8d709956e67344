"""The vault: a master key, per-subscriber data keys, and crypto-shredding.

Personal fields are sealed with AES-256-GCM under a data key of their own subscriber before they reach
an event. Data keys live in a key store apart from the events, wrapped (AES-GCM) by the master key the
operator supplies. Destroying a subscriber's data key makes their personal data unreadable everywhere
the ciphertext went (database, backups, exports), while every event stays in place.

The key stores themselves (SQLite, PostgreSQL, memory) are adapters in ``ledger/adapters/``; they all
have the interface of ``KeyStore``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
TOKEN_PREFIX = "v1."


class KeyStoreError(Exception):
    """Raised when a key cannot be loaded or does not match the data it should open."""


class MasterKey:
    """The operator's master key: wraps data keys and derives the ledger's keyed-hash secrets."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise KeyStoreError(f"master key must be {KEY_BYTES} bytes, got {len(key)}")
        self._key = key
        self._aead = AESGCM(key)

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        """Parse a base64 (standard or URL-safe) encoded 32-byte key."""
        cleaned = text.strip()
        try:
            raw = base64.urlsafe_b64decode(cleaned.replace("+", "-").replace("/", "_") + "==")
        except (ValueError, TypeError) as e:
            raise KeyStoreError("master key is not valid base64") from e
        return cls(raw)

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        """Load the key file, creating it (mode 0600) with a fresh random key when it is missing."""
        if path.exists():
            return cls.from_text(path.read_text())
        path.parent.mkdir(parents=True, exist_ok=True)
        key = os.urandom(KEY_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.urlsafe_b64encode(key).decode() + "\n")
        return cls(key)

    def derive(self, label: str) -> bytes:
        """A secret for one purpose, derived from the master key (HKDF-SHA256)."""
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label.encode()).derive(self._key)

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """Encrypt a data key, bound to its context (the subscriber id)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Decrypt a data key; KeyStoreError when the master key or context does not match."""
        try:
            return self._aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)
        except InvalidTag as e:
            raise KeyStoreError("data key does not open with this master key") from e


class KeyStore(Protocol):
    """Where wrapped data keys, their tombstones and pending erasures are kept."""

    def put(self, subscriber_id: UUID, wrapped_key: bytes) -> None:
        """Store a new wrapped data key."""

    def put_many(self, keys: list[tuple[UUID, bytes]]) -> None:
        """Store several new wrapped data keys in one transaction."""

    def get(self, subscriber_id: UUID) -> bytes | None:
        """The wrapped data key, or None when it never existed or was destroyed."""

    def mark_erasure_pending(self, subscriber_id: UUID) -> None:
        """Note an erasure about to be recorded."""

    def pending_erasures(self) -> list[UUID]:
        """Erasures started but not finished."""

    def clear_pending(self, subscriber_id: UUID) -> None:
        """Forget a pending erasure that was never recorded."""

    def destroy(self, subscriber_id: UUID) -> None:
        """Delete the data key and keep a tombstone."""

    def close(self) -> None:
        """Release the store's connection."""


class PersonalDataVault:
    """Seals and opens personal data under per-subscriber keys; destroys keys on erasure."""

    def __init__(self, master: MasterKey, store: KeyStore, cache_size: int = 10_000) -> None:
        self.master = master
        self.store = store
        self._cache: OrderedDict[UUID, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._identity_secret = master.derive("ledger/identity-key/v1")
        self._fingerprint_secret = master.derive("ledger/request-fingerprint/v1")

    def identity_key(self, id_type: str, id_number: str) -> str:
        """HMAC-SHA256 of (id_type, normalised id_number): counts numbers per person without the ID."""
        message = f"{id_type}\x00{id_number}".encode()
        return hmac.new(self._identity_secret, message, hashlib.sha256).hexdigest()

    def fingerprint(self, payload: bytes) -> str:
        """Keyed hash of a request's content; keyed so personal data cannot be guessed from it."""
        return hmac.new(self._fingerprint_secret, payload, hashlib.sha256).hexdigest()

    def create_key(self, subscriber_id: UUID) -> None:
        """Make and store a fresh data key for a new subscriber."""
        data_key = os.urandom(KEY_BYTES)
        self.store.put(subscriber_id, self.master.wrap(data_key, subscriber_id.bytes))
        self._remember(subscriber_id, data_key)

    def new_key(self, subscriber_id: UUID) -> tuple[UUID, bytes]:
        """Make a fresh data key, usable at once; the caller must store the returned wrapped key
        (``store.put_many``) before anything sealed under it is saved."""
        data_key = os.urandom(KEY_BYTES)
        self._remember(subscriber_id, data_key)
        return subscriber_id, self.master.wrap(data_key, subscriber_id.bytes)

    def seal(self, subscriber_id: UUID, data: dict[str, Any]) -> str:
        """Encrypt personal data under the subscriber's key; returns a text token for the event."""
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
        """Whether the subscriber's data key still exists."""
        return self._data_key(subscriber_id) is not None

    def destroy(self, subscriber_id: UUID) -> None:
        """Crypto-shred: forget the key in memory and delete it from the store."""
        with self._cache_lock:
            self._cache.pop(subscriber_id, None)
        self.store.destroy(subscriber_id)
        # A concurrent reader may have cached the key between the two steps above.
        with self._cache_lock:
            self._cache.pop(subscriber_id, None)

    def _data_key(self, subscriber_id: UUID) -> bytes | None:
        with self._cache_lock:
            cached = self._cache.get(subscriber_id)
            if cached is not None:
                self._cache.move_to_end(subscriber_id)
                return cached
        wrapped = self.store.get(subscriber_id)
        if wrapped is None:
            return None
        data_key = self.master.unwrap(wrapped, subscriber_id.bytes)
        self._remember(subscriber_id, data_key)
        return data_key

    def _remember(self, subscriber_id: UUID, data_key: bytes) -> None:
        with self._cache_lock:
            self._cache[subscriber_id] = data_key
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _aad(subscriber_id: UUID) -> bytes:
    return b"ledger/personal-data/v1/" + subscriber_id.bytes
