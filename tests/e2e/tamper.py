"""An attacker with write access to the store (SQLite file or PostgreSQL database), for the proof tests:
raw reads and writes of the events, chain, tree and head tables, and the rehashing a careful attacker
does to hide an edit."""

from __future__ import annotations

import sqlite3
from typing import Any
from uuid import UUID

from ledger.config import Settings
from ledger.integrity import GENESIS, chain_hash, stream_hash
from ledger.proofs.merkle import LEVEL_SHIFT


class Store:
    """Raw access to one ledger's tables."""

    def __init__(self, settings: Settings) -> None:
        self.pg = settings.store.kind == "postgres"
        if self.pg:
            import psycopg

            self.conn: Any = psycopg.connect(settings.store.conninfo(), autocommit=True)
            self.events, self.pos = "public.ledger_events", "notification_id"
        else:
            self.conn = sqlite3.connect(str(settings.store.sqlite_path), isolation_level=None)
            self.events, self.pos = "stored_events", "rowid"

    def close(self) -> None:
        self.conn.close()

    def q(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql.replace("?", "%s") if self.pg else sql, params)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def sid(self, stream_id: UUID) -> Any:
        return stream_id if self.pg else stream_id.hex

    def positions(self, stream_id: UUID) -> list[int]:
        """The stream's positions in version order."""
        rows = self.q(
            f"SELECT {self.pos} FROM {self.events} WHERE originator_id = ? ORDER BY originator_version",
            (self.sid(stream_id),),
        )
        return [int(r[0]) for r in rows]

    def row(self, position: int) -> tuple[Any, int, str, bytes]:
        r = self.q(
            f"SELECT originator_id, originator_version, topic, state FROM {self.events} WHERE {self.pos} = ?",
            (position,),
        )[0]
        return r[0], int(r[1]), str(r[2]), bytes(r[3])

    def max_position(self) -> int:
        return int(self.q(f"SELECT MAX({self.pos}) FROM {self.events}")[0][0] or 0)

    def delete(self, position: int) -> None:
        self.q(f"DELETE FROM {self.events} WHERE {self.pos} = ?", (position,))

    def set_state(self, position: int, state: bytes) -> None:
        self.q(f"UPDATE {self.events} SET state = ? WHERE {self.pos} = ?", (state, position))

    def swap(self, a: int, b: int) -> None:
        """Swap two events' contents (same stream: their versions stay with the positions)."""
        sa, sb = self.row(a)[3], self.row(b)[3]
        ta, tb = self.row(a)[2], self.row(b)[2]
        self.q(f"UPDATE {self.events} SET state = ?, topic = ? WHERE {self.pos} = ?", (sb, tb, a))
        self.q(f"UPDATE {self.events} SET state = ?, topic = ? WHERE {self.pos} = ?", (sa, ta, b))

    def rehash_stream(self, stream_id: UUID) -> None:
        """Recompute one stream's hashes (only those) to match its stored events."""
        previous = GENESIS
        for p in self.positions(stream_id):
            _, version, topic, state = self.row(p)
            previous = stream_hash(previous, stream_id, version, topic, state)
            self.q("UPDATE event_chain SET stream_hash = ? WHERE position = ?", (previous, p))

    def rehash_all(self) -> None:
        """Recompute every stream and global hash: the chains then match the stored events exactly."""
        heads: dict[str, tuple[int, bytes]] = {}
        previous = GENESIS
        rows = self.q(
            f"SELECT {self.pos}, originator_id, originator_version, topic, state FROM {self.events} ORDER BY {self.pos}"
        )
        self.q("DELETE FROM event_chain")
        for new_position, (_, sid, version, topic, state) in enumerate(rows, start=1):
            key = str(sid)
            digest = stream_hash(
                heads.get(key, (0, GENESIS))[1], UUID(str(sid)), int(version), str(topic), bytes(state)
            )
            heads[key] = (int(version), digest)
            previous = chain_hash(previous, new_position, digest)
            self.q("INSERT INTO event_chain VALUES (?, ?, ?)", (new_position, digest, previous))

    def roll_back_to(self, size: int) -> None:
        """Remove everything after position ``size``, in every table, consistently (a restored backup)."""
        self.q(f"DELETE FROM {self.events} WHERE {self.pos} > ?", (size,))
        self.q("DELETE FROM event_chain WHERE position > ?", (size,))
        for (node,) in self.q("SELECT node FROM merkle_nodes"):
            level, index = int(node) >> LEVEL_SHIFT, int(node) & ((1 << LEVEL_SHIFT) - 1)
            if (index + 1) << level > size:
                self.q("DELETE FROM merkle_nodes WHERE node = ?", (node,))
        for table in ("signed_heads",):
            self.q(f"DELETE FROM {table} WHERE size > ?", (size,))
        self.q("DELETE FROM batch_macs WHERE first_position > ?", (size,))
        for table in ("map_entries", "map_nodes"):
            self.q(f"DELETE FROM {table} WHERE head_size > ?", (size,))
