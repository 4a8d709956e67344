"""The primitives of the key hierarchy: the operator's master key, AES-256-GCM wrapping, and what the
wrapping of a bucket key or a data key is bound to."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12


class KeyStoreError(Exception):
    """Raised when a key cannot be loaded or does not match the data it should open."""


def hkdf(key: bytes, info: str, salt: bytes | None = None) -> bytes:
    """A 32-byte secret for one purpose, derived from ``key`` (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info.encode()).derive(key)


def wrap(key: bytes, plain: bytes, context: bytes) -> bytes:
    """Encrypt ``plain`` under ``key`` (AES-256-GCM, random nonce), bound to ``context``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plain, context)


def unwrap(key: bytes, wrapped: bytes, context: bytes) -> bytes:
    """Decrypt what ``wrap`` made; KeyStoreError when the key or context does not match."""
    try:
        return AESGCM(key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)
    except InvalidTag as e:
        raise KeyStoreError("a wrapped key does not open with this key") from e


def bucket_aad(bucket: int, generation: int) -> bytes:
    """What a bucket key's wrapping is bound to."""
    return f"ledger/bucket-key/v2/{bucket}/{generation}".encode()


def data_aad(subscriber_id: UUID) -> bytes:
    """What a data key's wrapping is bound to."""
    return b"ledger/data-key/v2/" + subscriber_id.bytes


class MasterKey:
    """The operator's master key: a second factor of every wrapping key and the keyed-hash secrets.

    Destroying nothing ever depends on it: a secret derived from it can always be derived again, so
    erasure rests on the epoch secret (``ledger.keys.epoch``), which moves forward one way."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise KeyStoreError(f"master key must be {KEY_BYTES} bytes, got {len(key)}")
        self._key = key

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
        return hkdf(self._key, label)

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """Encrypt a data key under the master key itself (the scheme before epochs; kept for migration)."""
        return wrap(self._key, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Decrypt a data key wrapped by ``wrap``; KeyStoreError when the master key or context differs."""
        try:
            return unwrap(self._key, wrapped, context)
        except KeyStoreError:
            raise KeyStoreError("data key does not open with this master key") from None
