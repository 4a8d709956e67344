"""An attacker with write access to the store (SQLite file or PostgreSQL database), for the proof tests:
raw reads and writes of the events, chain, tree and head tables, and the rehashing a careful attacker
does to hide an edit."""

from __future__ import annotations

import sqlite3
from typing import Any
from uuid import UUID

import orjson

from ledger.config import Settings
from ledger.integrity import GENESIS, chain_hash, stream_hash
from ledger.proofs.merkle import LEVEL_SHIFT, append_nodes, event_leaf_hash, node_key


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

    def exchange(self, a: int, b: int) -> None:
        """Two events (of any streams) trade places: stream, version, topic and state."""
        ra, rb = self.row(a), self.row(b)
        set_row = (
            f"UPDATE {self.events} SET originator_id = ?, originator_version = ?, topic = ?, state = ? "
            f"WHERE {self.pos} = ?"
        )
        self.q(f"UPDATE {self.events} SET originator_version = ? WHERE {self.pos} = ?", (-1, a))  # (unique key)
        self.q(set_row, (*ra, b))
        self.q(set_row, (*rb, a))

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

    # Forging: events of the attacker's own, with chains and tree made to match them.

    def forged_resume(self, stream_id: UUID, actor: str = "regulator-forged") -> tuple[Any, int, str, bytes]:
        """A ``Number.Resumed`` of this number after its last event, copied from its last Resumed with the
        actor changed: (stream id, version, topic, state)."""
        positions = self.positions(stream_id)
        resumed = [self.row(p) for p in positions if self.row(p)[2].endswith(":Number.Resumed")][-1]
        state = orjson.loads(resumed[3])
        state["actor"] = actor
        return resumed[0], self.row(positions[-1])[1] + 1, resumed[2], orjson.dumps(state)

    def append(self, event: tuple[Any, int, str, bytes]) -> int:
        """Append an event after the log's end; returns its position."""
        position = self.max_position() + 1
        self.q(
            f"INSERT INTO {self.events} (originator_id, originator_version, topic, state, {self.pos}) "
            "VALUES (?, ?, ?, ?, ?)",
            (*event, position),
        )
        return position

    def insert(self, position: int, event: tuple[Any, int, str, bytes]) -> None:
        """Insert an event at ``position``, moving every later event one position on."""
        for p in range(self.max_position(), position - 1, -1):
            self.q(f"UPDATE {self.events} SET {self.pos} = ? WHERE {self.pos} = ?", (p + 1, p))
        self.q(
            f"INSERT INTO {self.events} (originator_id, originator_version, topic, state, {self.pos}) "
            "VALUES (?, ?, ?, ?, ?)",
            (*event, position),
        )

    def rebuild_tree(self) -> None:
        """Recompute the whole Merkle tree from the stored events (what a careful attacker does)."""
        rows = self.q(
            f"SELECT {self.pos}, originator_id, originator_version, topic, state FROM {self.events} ORDER BY {self.pos}"
        )
        leaves = [event_leaf_hash(int(p), UUID(str(s)), int(v), str(t), bytes(st)) for p, s, v, t, st in rows]
        nodes: dict[tuple[int, int], bytes] = {}
        nodes.update(append_nodes(0, leaves, lambda level, index: nodes[(level, index)]))
        self.q("DELETE FROM merkle_nodes")
        for (level, index), digest in nodes.items():
            self.q("INSERT INTO merkle_nodes VALUES (?, ?)", (node_key(level, index), digest))

    def head_sizes(self) -> list[int]:
        """The sizes of every signed head stored."""
        return [int(r[0]) for r in self.q("SELECT size FROM signed_heads ORDER BY size")]


def garble(settings: Settings, damaged_id: UUID, unnamed_id: UUID) -> tuple[int, int, int]:
    """Make two stored events undecodable (the ledger closed): the second event of ``damaged_id`` (its
    Activated, after Provisioned) becomes text that is not JSON, the first of ``unnamed_id`` bytes that are not
    text. Returns (the first's position, the second's, the head)."""
    store = Store(settings)
    try:
        position = store.positions(damaged_id)[1]
        assert store.row(position)[2].endswith("Number.Activated")
        store.set_state(position, b"{not json")
        unnamed = store.positions(unnamed_id)[0]
        store.set_state(unnamed, b"\x00\xff")
        return position, unnamed, store.max_position()
    finally:
        store.close()
