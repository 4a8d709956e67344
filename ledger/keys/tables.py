"""The key store's tables and statements, written once for SQLite and PostgreSQL.

Tables: ``data_keys`` (each subscriber's data key, wrapped under its bucket's key), ``bucket_keys`` (the
bucket keys, wrapped under the epoch's wrapping key), ``key_state`` (one row: the epoch number, the
number of buckets, a check value of the epoch's key), ``marked_buckets`` (buckets with an erasure this
epoch), ``identity_salts`` (the per-identity salts of the identity keys), ``destroyed_keys`` (tombstones)
and ``pending_erasures`` (erasures being recorded). Statements use ``?``; the PostgreSQL store turns
them into ``%s``. Writers take the store's one lock (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory
lock), so that a rotation and a new key never interleave.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError

T = TypeVar("T")


class Tx(Protocol):
    """A transaction (or an autocommit connection for reads) of a key store."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (empty for statements without rows)."""

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""


@dataclass(frozen=True)
class EpochState:
    """The key store's current epoch: its number, how many buckets, the check value, when it began."""

    epoch: int
    buckets: int
    check: bytes
    started_us: int
    # Whether the store held keys from before epochs: only then can an identity have a pre-salt key.
    legacy: bool = False


@dataclass(frozen=True)
class BucketRow:
    """A bucket key as stored: wrapped under the wrapping key of the epoch in ``key_state``."""

    bucket: int
    generation: int
    wrapped: bytes


class StaleBucketError(Exception):
    """Raised when a key was wrapped under a bucket key that a rotation has since replaced."""


class ErasedKeyError(IntegrityError):
    """Raised when a data key is to be stored for a subscriber whose key was destroyed (an erasure):
    an erased subscriber's data is never sealed again. A conflict: the command runs again and finds what
    the erasure recorded."""


class RowChange(Protocol):
    """A change to the key store that must commit with new data keys, in their transaction (an identity's
    salt row: ``ledger.keys.identity.SaltChange``)."""

    def write(self, tables: KeyTables, tx: Tx) -> None:
        """Write the change in ``tx``, or raise when another writer overtook it since it was planned."""


class KeyTables:
    """The statements of a key store; subclasses give the connection, the lock and the id type."""

    #: Table prefix ("" on SQLite, the schema on PostgreSQL).
    prefix = ""
    #: Set by ``close`` (a process following epochs stops then).
    closed = False

    def _read(self, work: Callable[[Tx], T]) -> T:
        raise NotImplementedError

    def _write(self, work: Callable[[Tx], T]) -> T:
        raise NotImplementedError

    def _sid(self, subscriber_id: UUID) -> Any:
        """The subscriber id as the database stores it."""
        return str(subscriber_id)

    def t(self, name: str) -> str:
        """A table's qualified name."""
        return self.prefix + name

    # -- epochs and buckets ------------------------------------------------------------------------------

    def state(self, tx: Tx | None = None) -> EpochState | None:
        """The current epoch, or None before the store was set up for epochs."""
        sql = f"SELECT epoch, buckets, check_value, started_us, legacy FROM {self.t('key_state')} WHERE id = 1"
        rows = tx.execute(sql) if tx is not None else self._read(lambda c: c.execute(sql))
        if not rows:
            return None
        r = rows[0]
        return EpochState(int(r[0]), int(r[1]), bytes(r[2]), int(r[3]), bool(r[4]))

    def bucket(self, bucket: int) -> tuple[BucketRow, int]:
        """A bucket key's row and the epoch it is wrapped in (one consistent read)."""
        rows = self._read(
            lambda c: c.execute(
                f"SELECT b.generation, b.wrapped, s.epoch FROM {self.t('bucket_keys')} b, {self.t('key_state')} s "
                "WHERE b.bucket = ? AND s.id = 1",
                (bucket,),
            )
        )
        if not rows:
            raise StaleBucketError(f"bucket {bucket} has no key")
        return BucketRow(bucket, int(rows[0][0]), bytes(rows[0][1])), int(rows[0][2])

    def generations(self, tx: Tx, buckets: Sequence[int]) -> dict[int, int]:
        """The current generation of each of these buckets' keys."""
        wanted = sorted(set(buckets))
        found: dict[int, int] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for b, g in tx.execute(
                f"SELECT bucket, generation FROM {self.t('bucket_keys')} WHERE bucket IN ({marks})", chunk
            ):
                found[int(b)] = int(g)
        return found

    def initialise(
        self,
        make: Callable[[Tx], tuple[EpochState, list[BucketRow], list[tuple[UUID, bytes, int]]] | None],
    ) -> bool:
        """Set the store up for epochs, once: ``make`` sees the store locked and returns the first
        state, the bucket keys and the re-wrapped existing data keys (None when already set up)."""

        def work(tx: Tx) -> bool:
            made = make(tx)
            if made is None:
                return False
            state, buckets, rewrapped = made
            tx.execute(
                f"INSERT INTO {self.t('key_state')} (id, epoch, buckets, check_value, started_us, legacy) "
                "VALUES (1, ?, ?, ?, ?, ?)",
                (state.epoch, state.buckets, state.check, state.started_us, int(state.legacy)),
            )
            tx.executemany(
                f"INSERT INTO {self.t('bucket_keys')} (bucket, generation, wrapped) VALUES (?, ?, ?)",
                [(b.bucket, b.generation, b.wrapped) for b in buckets],
            )
            tx.executemany(
                f"UPDATE {self.t('data_keys')} SET wrapped_key = ?, bucket = ? WHERE subscriber_id = ?",
                [(wrapped, bucket, self._sid(sid)) for sid, wrapped, bucket in rewrapped],
            )
            return True

        return self._write(work)

    def had_subscribers(self, tx: Tx) -> bool:
        """Whether any data key was ever stored or destroyed here (before epochs, when called at set-up)."""
        return bool(
            tx.execute(f"SELECT 1 FROM {self.t('data_keys')} LIMIT 1")
            or tx.execute(f"SELECT 1 FROM {self.t('destroyed_keys')} LIMIT 1")
        )

    def legacy_keys(self, tx: Tx) -> list[tuple[UUID, bytes]]:
        """Data keys still wrapped under the master key (stored before epochs)."""
        rows = tx.execute(f"SELECT subscriber_id, wrapped_key FROM {self.t('data_keys')} WHERE bucket IS NULL")
        return [(UUID(str(r[0])), bytes(r[1])) for r in rows]

    # -- data keys -----------------------------------------------------------------------------------------

    def get(self, subscriber_id: UUID) -> bytes | None:
        """The wrapped data key, or None when it never existed or was destroyed."""
        rows = self._read(
            lambda c: c.execute(
                f"SELECT wrapped_key FROM {self.t('data_keys')} WHERE subscriber_id = ?", (self._sid(subscriber_id),)
            )
        )
        return None if not rows else bytes(rows[0][0])

    def get_with_bucket(self, subscriber_id: UUID, bucket: int) -> tuple[bytes, BucketRow, int] | None:
        """The wrapped data key with its bucket's row and epoch, read together (a rotation cannot fall
        between them), or None when the key does not exist."""
        rows = self._read(
            lambda c: c.execute(
                f"SELECT d.wrapped_key, b.generation, b.wrapped, s.epoch FROM {self.t('data_keys')} d, "
                f"{self.t('bucket_keys')} b, {self.t('key_state')} s "
                "WHERE d.subscriber_id = ? AND b.bucket = ? AND s.id = 1",
                (self._sid(subscriber_id), bucket),
            )
        )
        if not rows:
            return None
        r = rows[0]
        return bytes(r[0]), BucketRow(bucket, int(r[1]), bytes(r[2])), int(r[3])

    def put_many(
        self,
        keys: list[tuple[UUID, bytes, int]],
        generations: dict[int, int],
        also: Callable[[Tx], None] | None = None,
    ) -> dict[UUID, bytes]:
        """Store new wrapped data keys (subscriber, wrapped key, bucket) in one transaction, with ``also``
        (identity salts), each only where the subscriber has none yet; returns the wrapped key stored for
        each subscriber once it commits (a key stored before wins: sealing goes under what is stored).
        StaleBucketError when a bucket key they were wrapped under was replaced meanwhile (wrap again and
        retry); ErasedKeyError when one of the subscribers' keys was destroyed."""

        def work(tx: Tx) -> dict[UUID, bytes]:
            if also is not None:
                also(tx)
            current = self.generations(tx, list(generations))
            if current != generations:
                raise StaleBucketError("a bucket key was replaced while the data keys were wrapped")
            # Under the store's one write lock: nobody can insert between this read and the insert.
            stored = self._stored(tx, [sid for sid, _, _ in keys])
            destroyed = self._destroyed(tx, [sid for sid, _, _ in keys if sid not in stored])
            if destroyed:
                raise ErasedKeyError(f"the data key of subscriber {sorted(destroyed)[0]} was destroyed")
            new = [(sid, wrapped, bucket) for sid, wrapped, bucket in keys if sid not in stored]
            tx.executemany(
                f"INSERT INTO {self.t('data_keys')} (subscriber_id, wrapped_key, bucket, created_at) "
                f"VALUES (?, ?, ?, {self._now_sql})",
                [(self._sid(sid), wrapped, bucket) for sid, wrapped, bucket in new],
            )
            return {**{sid: wrapped for sid, wrapped, _ in new}, **stored}

        return self._write(work)

    def _stored(self, tx: Tx, subscriber_ids: Sequence[UUID]) -> dict[UUID, bytes]:
        """The wrapped keys stored for these subscribers (those that have one)."""
        found: dict[UUID, bytes] = {}
        for start in range(0, len(subscriber_ids), 500):
            chunk = [self._sid(s) for s in subscriber_ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT subscriber_id, wrapped_key FROM {self.t('data_keys')} WHERE subscriber_id IN ({marks})"
            found.update((UUID(str(r[0])), bytes(r[1])) for r in tx.execute(sql, chunk))
        return found

    def _destroyed(self, tx: Tx, subscriber_ids: Sequence[UUID]) -> set[UUID]:
        """Those of these subscribers whose key was destroyed (a tombstone)."""
        found: set[UUID] = set()
        for start in range(0, len(subscriber_ids), 500):
            chunk = [self._sid(s) for s in subscriber_ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT subscriber_id FROM {self.t('destroyed_keys')} WHERE subscriber_id IN ({marks})"
            found.update(UUID(str(r[0])) for r in tx.execute(sql, chunk))
        return found

    def keyless(self, subscriber_ids: Sequence[UUID]) -> list[UUID]:
        """Those of these subscribers with neither a stored data key nor a tombstone (their key was lost)."""
        known: set[UUID] = set()
        for start in range(0, len(subscriber_ids), 500):
            chunk = [self._sid(s) for s in subscriber_ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            # One statement: a key destroyed meanwhile is seen either as a key or as a tombstone.
            sql = (
                f"SELECT subscriber_id FROM {self.t('data_keys')} WHERE subscriber_id IN ({marks}) UNION "
                f"SELECT subscriber_id FROM {self.t('destroyed_keys')} WHERE subscriber_id IN ({marks})"
            )
            params = [*chunk, *chunk]

            def query(c: Tx, sql: str = sql, params: list[Any] = params) -> list[tuple[Any, ...]]:
                return c.execute(sql, params)

            known.update(UUID(str(r[0])) for r in self._read(query))
        return [sid for sid in subscriber_ids if sid not in known]

    _now_sql = "CURRENT_TIMESTAMP"

    def destroy(self, subscriber_id: UUID, bucket: int) -> None:
        """Delete the data key, keep a tombstone, and mark its bucket for a new key at the epoch's end."""
        sid = self._sid(subscriber_id)

        def work(tx: Tx) -> None:
            tx.execute(f"DELETE FROM {self.t('data_keys')} WHERE subscriber_id = ?", (sid,))
            tx.execute(
                f"INSERT INTO {self.t('destroyed_keys')} (subscriber_id, destroyed_at) VALUES (?, {self._now_sql}) "
                "ON CONFLICT DO NOTHING",
                (sid,),
            )
            tx.execute(f"DELETE FROM {self.t('pending_erasures')} WHERE subscriber_id = ?", (sid,))
            tx.execute(f"DELETE FROM {self.t('held_erasures')} WHERE subscriber_id = ?", (str(subscriber_id),))
            tx.execute(f"INSERT INTO {self.t('marked_buckets')} (bucket) VALUES (?) ON CONFLICT DO NOTHING", (bucket,))

        self._write(work)
        self._after_destroy()

    def _after_destroy(self) -> None:
        """Reclaim the deleted rows' space where the database needs telling (PostgreSQL)."""

    def marked(self) -> list[int]:
        """Buckets with an erasure in the current epoch."""
        return [int(r[0]) for r in self._read(lambda c: c.execute(f"SELECT bucket FROM {self.t('marked_buckets')}"))]

    # -- pending erasures ----------------------------------------------------------------------------------

    def mark_erasure_pending(self, subscriber_id: UUID) -> None:
        """Note an erasure about to be recorded, so a crash before the key is destroyed is finished later."""
        self._write(
            lambda c: c.execute(
                f"INSERT INTO {self.t('pending_erasures')} (subscriber_id, requested_at) "
                f"VALUES (?, {self._now_sql}) ON CONFLICT DO NOTHING",
                (self._sid(subscriber_id),),
            )
        )

    def pending_erasures(self) -> list[UUID]:
        """Erasures started but not finished."""
        rows = self._read(lambda c: c.execute(f"SELECT subscriber_id FROM {self.t('pending_erasures')}"))
        return sorted(UUID(str(r[0])) for r in rows)

    def clear_pending(self, subscriber_id: UUID) -> None:
        """Forget a pending erasure that was never recorded."""
        self._write(
            lambda c: c.execute(
                f"DELETE FROM {self.t('pending_erasures')} WHERE subscriber_id = ?", (self._sid(subscriber_id),)
            )
        )

    # -- erasures held by the retention period --------------------------------------------------------------

    def hold_erasure(self, subscriber_id: UUID, due_us: int) -> None:
        """Note an erasure held until ``due_us``, written before its event so that ``erase_due`` finds it
        (a note whose event was never saved is dropped there)."""
        self._write(
            lambda c: c.execute(
                f"INSERT INTO {self.t('held_erasures')} (subscriber_id, due_us) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (str(subscriber_id), due_us),
            )
        )

    def held_erasures(self, due_by_us: int | None = None) -> list[tuple[UUID, int]]:
        """Held erasures (subscriber, due time in microseconds), those due by ``due_by_us`` or all, by due time."""
        where, params = ("WHERE due_us <= ?", (due_by_us,)) if due_by_us is not None else ("", ())
        rows = self._read(
            lambda c: c.execute(
                f"SELECT subscriber_id, due_us FROM {self.t('held_erasures')} {where} ORDER BY due_us, subscriber_id",
                params,
            )
        )
        return [(UUID(str(r[0])), int(r[1])) for r in rows]

    def clear_hold(self, subscriber_id: UUID) -> None:
        """Forget a held erasure whose event was never saved."""
        self._write(
            lambda c: c.execute(f"DELETE FROM {self.t('held_erasures')} WHERE subscriber_id = ?", (str(subscriber_id),))
        )

    # -- identity salts ------------------------------------------------------------------------------------

    def in_read(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` outside any transaction (one consistent statement at a time)."""
        return self._read(work)

    def in_write(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` in a write transaction under the store's lock (identity salts, rotations)."""
        return self._write(work)

    def close(self) -> None:
        """Release the store's connection."""


def schema(prefix: str, blob: str, integer: str) -> list[str]:
    """The tables added for epochs (the data key tables exist already)."""
    return [
        f"CREATE TABLE IF NOT EXISTS {prefix}key_state (id integer PRIMARY KEY CHECK (id = 1), "
        f"epoch {integer} NOT NULL, buckets integer NOT NULL, check_value {blob} NOT NULL, "
        f"started_us {integer} NOT NULL, legacy integer NOT NULL DEFAULT 0)",
        f"CREATE TABLE IF NOT EXISTS {prefix}bucket_keys (bucket integer PRIMARY KEY, "
        f"generation {integer} NOT NULL, wrapped {blob} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {prefix}marked_buckets (bucket integer PRIMARY KEY)",
        f"CREATE TABLE IF NOT EXISTS {prefix}held_erasures (subscriber_id text PRIMARY KEY, due_us {integer} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {prefix}identity_salts (tag {blob} PRIMARY KEY, bucket integer NOT NULL, "
        f"wrapped {blob} NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS identity_salts_bucket ON {prefix}identity_salts (bucket)",
        f"CREATE INDEX IF NOT EXISTS data_keys_bucket ON {prefix}data_keys (bucket)",
    ]
