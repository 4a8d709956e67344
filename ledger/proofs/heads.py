"""Signed tree heads: the operator's Ed25519 signature over (tree size, log root, stream-map root, time).

A head is what an auditor keeps and what the operator publishes: with the operator's public key it
proves, with nothing else, which events the log held at that size (inclusion proofs), that a later head
extends it (consistency proofs), and which version each stream had reached (the stream-head map).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CONTEXT = b"ledger-signed-head-v1\n"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SignedHead:
    """A tree head and the operator's signature over it."""

    size: int
    root_hash: bytes
    map_root: bytes
    signed_at: datetime
    key_id: str
    signature: bytes

    def message(self) -> bytes:
        """The bytes that are signed."""
        return head_message(self.size, self.root_hash, self.map_root, self.signed_at)

    def to_json(self) -> dict[str, Any]:
        """The head as JSON values (hex hashes, base64 signature)."""
        return {
            "size": self.size,
            "root_hash": self.root_hash.hex(),
            "map_root": self.map_root.hex(),
            "signed_at": self.signed_at.isoformat(),
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignedHead:
        """A head from ``to_json``'s form; ValueError (or KeyError, TypeError) when malformed."""
        return cls(
            size=int(data["size"]),
            root_hash=bytes.fromhex(data["root_hash"]),
            map_root=bytes.fromhex(data["map_root"]),
            signed_at=datetime.fromisoformat(data["signed_at"]),
            key_id=str(data["key_id"]),
            signature=base64.b64decode(data["signature"], validate=True),
        )


def head_message(size: int, root_hash: bytes, map_root: bytes, signed_at: datetime) -> bytes:
    """The signed bytes of a head: sizes and times fixed-width, so no two heads share a message."""
    micros = (signed_at - EPOCH) // timedelta(microseconds=1)
    return CONTEXT + struct.pack(">Q", size) + root_hash + map_root + struct.pack(">q", micros)


def key_id(public: Ed25519PublicKey) -> str:
    """A short name of a public key: the first 8 bytes of SHA-256 of its raw form, hex."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8].hex()


def public_pem(public: Ed25519PublicKey) -> str:
    """The public key in PEM (SubjectPublicKeyInfo), what the operator publishes."""
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(text: str | bytes) -> Ed25519PublicKey:
    """A public key from PEM; ValueError when it is not an Ed25519 key."""
    key = serialization.load_pem_public_key(text.encode() if isinstance(text, str) else text)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


class HeadSigner:
    """The operator's head-signing key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    @classmethod
    def load_or_create(cls, path: Path) -> HeadSigner:
        """The key in ``path`` (PEM, PKCS#8), generated there with mode 0600 on first use."""
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return cls(key)

    @classmethod
    def derived(cls, master_key: bytes) -> HeadSigner:
        """The key derived from the master key (when the master key is given in the environment, there
        is no file to keep a key beside; every process holding the master key signs with the same key)."""
        seed = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"ledger-head-signing-v1").derive(master_key)
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, size: int, root_hash: bytes, map_root: bytes, signed_at: datetime | None = None) -> SignedHead:
        """A signed head over these values (now, to the microsecond, by default)."""
        at = (signed_at or datetime.now(UTC)).astimezone(UTC)
        signature = self._private.sign(head_message(size, root_hash, map_root, at))
        return SignedHead(size, root_hash, map_root, at, self.key_id, signature)


def verify_head(head: SignedHead, public: Ed25519PublicKey) -> str:
    """ "" when the head's signature is the holder of ``public``'s, else the problem."""
    if head.key_id != key_id(public):
        return f"the head is signed with key {head.key_id}, not {key_id(public)}"
    try:
        public.verify(head.signature, head.message())
    except InvalidSignature:
        return f"the signature of the head at size {head.size} does not verify"
    return ""
