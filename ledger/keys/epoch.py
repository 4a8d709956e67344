"""The epoch secret: a small local key file that moves forward by a one-way ratchet.

Every bucket key is wrapped under a key made of the current epoch secret ``E_n`` (and the master key).
When an erasure epoch ends, ``E_{n+1} = HKDF(E_n, "next epoch")`` replaces ``E_n`` in the file, written
over it in place, and every bucket key is re-wrapped under the new one. ``E_n`` cannot be computed from
``E_{n+1}``, so once every host has moved on, no file the operator keeps opens a copy of the key
store (a table file, a WAL segment, a replica, a backup) taken in epoch ``n`` or before.

Each host keeps its own file. Hosts never send secrets to each other: the key store records the
current epoch number and a check value, and a host behind it ratchets its file forward to that number.

The file is one line of fixed length, ``ledger-epoch-v1 <epoch> <base64 secret>``, so that the new
value is written over the very bytes of the old one. On copy-on-write file systems (btrfs, ZFS, some
overlay and snapshot setups) and on flash storage that remaps writes, the old bytes may survive on the
device; see docs/privacy.md for what that means for the bound.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.keys.crypto import KEY_BYTES, KeyStoreError, hkdf

if TYPE_CHECKING:
    from ledger.config import StoreConfig

MAGIC = "ledger-epoch-v1"
LINE_BYTES = len(MAGIC) + 1 + 20 + 1 + 44 + 1


def default_path(store: StoreConfig) -> Path:
    """This host's epoch key file: ``ledger.db`` -> ``ledger.epoch.key``; for PostgreSQL one per database
    under ``~/.local/state/ledger`` (set LEDGER_EPOCH_KEY_FILE on a real deployment)."""
    if store.sqlite_path is not None:
        return store.sqlite_path.with_name(store.sqlite_path.stem + ".epoch.key")
    pg = store.postgres
    name = f"{pg['host']}_{pg['port']}_{pg['dbname']}".replace("/", "_")
    return Path.home() / ".local" / "state" / "ledger" / f"{name}.epoch.key"


def next_secret(secret: bytes) -> bytes:
    """The next epoch's secret; the previous one cannot be computed from it."""
    return hkdf(secret, "ledger/epoch/next epoch")


def ratchet(secret: bytes, steps: int) -> bytes:
    """The secret ``steps`` epochs later."""
    for _ in range(steps):
        secret = next_secret(secret)
    return secret


def wrapping_key(secret: bytes, epoch: int, master_salt: bytes) -> bytes:
    """The key that wraps bucket keys in ``epoch``: both the epoch secret and the master key are needed."""
    return hkdf(secret, f"ledger/bucket-wrap/v2/{epoch}", salt=master_salt)


def check_value(wrap_key: bytes) -> bytes:
    """A value the key store keeps to tell whether a host's epoch secret is the right one."""
    return hmac.new(wrap_key, b"ledger/epoch-check/v1", hashlib.sha256).digest()


def _line(epoch: int, secret: bytes) -> bytes:
    return f"{MAGIC} {epoch:020d} {base64.urlsafe_b64encode(secret).decode()}\n".encode()


def _parse(raw: bytes, path: Path) -> tuple[int, bytes]:
    try:
        magic, epoch_text, secret_text = raw.decode().split()
        secret = base64.urlsafe_b64decode(secret_text)
        if magic != MAGIC or len(secret) != KEY_BYTES:
            raise ValueError(magic)
        return int(epoch_text), secret
    except (ValueError, UnicodeDecodeError):
        raise KeyStoreError(f"epoch key file {path} is not a ledger epoch file") from None


class EpochFile:
    """This host's copy of the current epoch secret (mode 0600), advanced in place under a file lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> tuple[int, bytes] | None:
        """(epoch, secret) held here, or None when the file does not exist (or is empty)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return _parse(raw, self.path) if raw.strip() else None

    def create(self, epoch: int, secret: bytes) -> None:
        """Write a new file; refuses to replace one that exists."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, _line(epoch, secret))
            os.fsync(fd)
        finally:
            os.close(fd)

    def advance(self, epoch: int) -> bytes:
        """Ratchet the file forward to ``epoch`` (overwriting the old secret) and return that secret.

        Several processes of one host share the file: the lock makes each step happen once. A file
        ahead of ``epoch`` is refused: the key store was restored from before this host's epoch, and
        the secret it needs no longer exists anywhere (that is the point of the ratchet)."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            raise KeyStoreError(
                f"epoch key file {self.path} does not exist: copy it from a host of this ledger "
                "(or start from an empty key store)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, secret = _parse(os.pread(fd, LINE_BYTES * 2, 0), self.path)
            if held > epoch:
                raise KeyStoreError(
                    f"epoch key file {self.path} is at epoch {held} but the key store is at epoch {epoch}: "
                    "the key store was restored from an older copy, whose keys were ratcheted away"
                )
            if held < epoch:
                secret = ratchet(secret, epoch - held)
                # Same length, same offset: the new secret covers the old one's bytes.
                os.pwrite(fd, _line(epoch, secret), 0)
                os.fsync(fd)
            return secret
        finally:
            os.close(fd)  # also releases the lock


class MemoryEpochFile(EpochFile):
    """An epoch 'file' held in memory (tests, the in-memory store)."""

    def __init__(self) -> None:
        super().__init__(Path(":memory:"))
        self._held: tuple[int, bytes] | None = None

    def read(self) -> tuple[int, bytes] | None:
        """(epoch, secret) held, or None."""
        return self._held

    def create(self, epoch: int, secret: bytes) -> None:
        """Hold a first secret."""
        self._held = (epoch, secret)

    def advance(self, epoch: int) -> bytes:
        """Ratchet forward to ``epoch``."""
        if self._held is None or self._held[0] > epoch:
            raise KeyStoreError("the in-memory epoch secret does not match the key store")
        self._held = (epoch, ratchet(self._held[1], epoch - self._held[0]))
        return self._held[1]
