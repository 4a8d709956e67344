"""The proof tables in the events database, and the reads and writes of them for SQLite and PostgreSQL
(the same SQL; ``?`` marks become ``%s`` on PostgreSQL):

- ``merkle_nodes``: the log tree's complete subtrees (written with the events, ``log_tree``);
- ``signed_heads``: every signed head issued;
- ``map_entries`` and ``map_nodes``: the stream-head map, one row per stream (or node) changed at a head,
  so the map as of any signed head is the latest row at or below that head's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from ledger.proofs import stream_map
from ledger.proofs.batches import BATCH_TABLE, MARKS_TABLE, Batch, Mark
from ledger.proofs.heads import SignedHead
from ledger.proofs.log_tree import TREE_TABLE, TreeMismatch, tree_size_sql
from ledger.proofs.merkle import Tree, needed, node_key

HEADS_TABLE, MAP_ENTRIES, MAP_NODES = "signed_heads", "map_entries", "map_nodes"
T = TypeVar("T")

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
Write = Callable[[list[tuple[str, list[tuple[Any, ...]]]]], None]


def _tables(blob: str, integer: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {{s}}{TREE_TABLE} (node {integer} PRIMARY KEY, hash {blob} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {{s}}{HEADS_TABLE} (size {integer} PRIMARY KEY, root_hash {blob} NOT NULL, "
        f"map_root {blob} NOT NULL, signed_at TEXT NOT NULL, key_id TEXT NOT NULL, signature {blob} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {{s}}{MAP_ENTRIES} (stream_id TEXT NOT NULL, head_size {integer} NOT NULL, "
        f"bucket {integer} NOT NULL, version {integer} NOT NULL, stream_hash {blob} NOT NULL, "
        "PRIMARY KEY (stream_id, head_size))",
        f"CREATE INDEX IF NOT EXISTS {MAP_ENTRIES}_bucket ON {{s}}{MAP_ENTRIES} (bucket, head_size)",
        f"CREATE TABLE IF NOT EXISTS {{s}}{MAP_NODES} (node {integer} NOT NULL, head_size {integer} NOT NULL, "
        f"hash {blob} NOT NULL, PRIMARY KEY (node, head_size))",
        f"CREATE TABLE IF NOT EXISTS {{s}}{BATCH_TABLE} (first_position {integer} PRIMARY KEY, "
        f"last_position {integer} NOT NULL, mac {blob} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {{s}}{MARKS_TABLE} (name TEXT PRIMARY KEY, position {integer} NOT NULL, "
        f"mac {blob} NOT NULL)",
    ]


def sqlite_proof_tables() -> list[str]:
    """The proof tables' DDL on SQLite."""
    return [t.format(s="") for t in _tables("BLOB", "INTEGER")]


def postgres_proof_tables(schema: str) -> list[str]:
    """The proof tables' DDL on PostgreSQL, in ``schema``."""
    return [t.format(s=f'"{schema}".') for t in _tables("bytea", "bigint")]


class ProofStore:
    """Reads of the tree, heads and map, and the write of a signed head with its map changes."""

    def __init__(self, query: Query, write: Write | None, *, postgres: bool, prefix: str = "") -> None:
        self._query_raw, self._write = query, write
        self.postgres, self.prefix = postgres, prefix

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._query_raw(sql.replace("?", "%s") if self.postgres else sql, params)

    def _t(self, table: str) -> str:
        return f"{self.prefix}{table}"

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        if self.postgres:
            return f"{column} = ANY(?)", [list(values)]
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    # The log tree.

    def tree_size(self) -> int:
        """The number of leaves in the stored tree."""
        rows = self._query(tree_size_sql(self._t(TREE_TABLE)), [])
        return 0 if not rows or rows[0][0] is None else int(rows[0][0]) + 1

    def nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Stored complete subtrees (absent where the store lacks one)."""
        if not keys:
            return {}
        by_key = {node_key(level, index): (level, index) for level, index in keys}
        found: dict[tuple[int, int], bytes] = {}
        wanted = list(by_key)
        for start in range(0, len(wanted), 500):
            where, params = self._in("node", wanted[start : start + 500])
            for node, h in self._query(f"SELECT node, hash FROM {self._t(TREE_TABLE)} WHERE {where}", params):
                found[by_key[int(node)]] = bytes(h)
        return found

    def compute(self, size: int, fn: Callable[[Tree], T]) -> T:
        """``fn`` over the stored tree of ``size`` leaves, its nodes read in one query; TreeMismatch when a
        node is missing (a damaged tree, or one not caught up since it was turned off)."""
        found = self.nodes(needed(fn, size))

        def get(level: int, index: int) -> bytes:
            node = found.get((level, index))
            if node is None:
                raise TreeMismatch(f"the Merkle tree lacks its node ({level}, {index}) of a tree of {size} leaves")
            return node

        return fn(Tree(size, get))

    def root(self, size: int) -> bytes:
        """The root hash of the stored tree's first ``size`` leaves."""
        return self.compute(size, lambda t: t.root(size))

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size`` leaves."""
        return self.compute(size, lambda t: t.inclusion(index, size))

    def consistency(self, old: int, new: int) -> list[bytes]:
        """The consistency proof from the tree of ``old`` leaves to the one of ``new``."""
        return self.compute(new, lambda t: t.consistency(old, new))

    def leaf_hashes(self, positions: Sequence[int]) -> dict[int, bytes]:
        """The stored leaf hashes of these positions."""
        found = self.nodes([(0, p - 1) for p in positions])
        return {index + 1: h for (_, index), h in found.items()}

    # Batch authentication (``ledger.proofs.batches``).

    def marks(self) -> dict[str, Mark]:
        """Every mark by name."""
        rows = self._query(f"SELECT name, position, mac FROM {self._t(MARKS_TABLE)}", [])
        return {str(r[0]): Mark(int(r[1]), bytes(r[2])) for r in rows}

    def batches(self, after: int, limit: int) -> list[Batch]:
        """Up to ``limit`` batches whose first position is above ``after``, in order."""
        rows = self._query(
            f"SELECT first_position, last_position, mac FROM {self._t(BATCH_TABLE)} WHERE first_position > ? "
            "ORDER BY first_position LIMIT ?",
            [after, limit],
        )
        return [Batch(int(r[0]), int(r[1]), bytes(r[2])) for r in rows]

    def batch_at(self, position: int) -> Batch | None:
        """The batch that holds ``position`` (None when none does)."""
        rows = self._query(
            f"SELECT first_position, last_position, mac FROM {self._t(BATCH_TABLE)} WHERE first_position <= ? "
            "ORDER BY first_position DESC LIMIT 1",
            [position],
        )
        batch = Batch(int(rows[0][0]), int(rows[0][1]), bytes(rows[0][2])) if rows else None
        return batch if batch is not None and batch.last >= position else None

    def record_mark(self, name: str, mark: Mark) -> None:
        """Record a mark (kept when one of that name is already there: another process recorded it)."""
        if self._write is None:
            raise RuntimeError("a read-only proof store cannot record marks")
        m = "%s" if self.postgres else "?"
        self._write(
            [
                (
                    f"INSERT INTO {self._t(MARKS_TABLE)} VALUES ({m}, {m}, {m}) ON CONFLICT (name) DO NOTHING",
                    [(name, mark.position, mark.mac)],
                )
            ]
        )

    def drop_mark(self, name: str) -> None:
        """Remove a mark."""
        if self._write is None:
            raise RuntimeError("a read-only proof store cannot drop marks")
        m = "%s" if self.postgres else "?"
        self._write([(f"DELETE FROM {self._t(MARKS_TABLE)} WHERE name = {m}", [(name,)])])

    # Signed heads.

    def heads(self, above: int = -1) -> list[SignedHead]:
        """Every signed head (with a size above ``above``), smallest first."""
        rows = self._query(
            f"SELECT size, root_hash, map_root, signed_at, key_id, signature FROM {self._t(HEADS_TABLE)} "
            "WHERE size > ? ORDER BY size",
            [above],
        )
        return [_head(r) for r in rows]

    def head(self, size: int | None = None) -> SignedHead | None:
        """The signed head at ``size``, or the latest one (None when there is none)."""
        where, params = ("WHERE size = ?", [size]) if size is not None else ("", [])
        rows = self._query(
            f"SELECT size, root_hash, map_root, signed_at, key_id, signature FROM {self._t(HEADS_TABLE)} "
            f"{where} ORDER BY size DESC LIMIT 1",
            params,
        )
        return _head(rows[0]) if rows else None

    # The stream-head map.

    def map_entries(self, buckets: Sequence[int], head_size: int) -> dict[int, list[stream_map.Entry]]:
        """The entries of these buckets as of the head at ``head_size`` (each stream's latest row)."""
        out: dict[int, list[stream_map.Entry]] = {b: [] for b in buckets}
        if not buckets:
            return out
        latest: dict[str, tuple[int, int, int, bytes]] = {}
        where, params = self._in("bucket", list(buckets))
        rows = self._query(
            f"SELECT stream_id, head_size, bucket, version, stream_hash FROM {self._t(MAP_ENTRIES)} "
            f"WHERE {where} AND head_size <= ? ORDER BY head_size",
            [*params, head_size],
        )
        for sid, _, bucket, version, digest in rows:
            latest[str(sid)] = (int(bucket), int(version), 0, bytes(digest))
        for sid, (bucket, version, _, digest) in latest.items():
            out[bucket].append(stream_map.Entry(UUID(sid), version, digest))
        return out

    def map_nodes(self, keys: Sequence[tuple[int, int]], head_size: int) -> dict[tuple[int, int], bytes]:
        """Map nodes as of the head at ``head_size`` (absent ones are empty subtrees)."""
        found: dict[tuple[int, int], bytes] = {}
        by_key = {stream_map.node_key(d, i): (d, i) for d, i in keys}
        wanted = list(by_key)
        for start in range(0, len(wanted), 500):
            where, params = self._in("node", wanted[start : start + 500])
            rows = self._query(
                f"SELECT node, hash FROM {self._t(MAP_NODES)} WHERE {where} AND head_size <= ? ORDER BY head_size",
                [*params, head_size],
            )
            for node, h in rows:
                found[by_key[int(node)]] = bytes(h)
        return found

    def map_proof(self, stream_id: UUID, head_size: int) -> tuple[list[stream_map.Entry], list[bytes]]:
        """A stream's map proof as of a head: its bucket's entries and the sibling hashes to the root."""
        bucket = stream_map.bucket_of(stream_id)
        entries = self.map_entries([bucket], head_size)[bucket]
        siblings = self.map_nodes(stream_map.siblings_needed([bucket]), head_size)
        return entries, stream_map.path(bucket, siblings)

    def save_head(
        self, head: SignedHead, entries: Sequence[stream_map.Entry], nodes: dict[tuple[int, int], bytes]
    ) -> None:
        """Record a signed head with the map rows it changed, in one transaction."""
        if self._write is None:
            raise RuntimeError("a read-only proof store cannot record heads")
        mark = "%s" if self.postgres else "?"
        self._write(
            [
                (
                    f"INSERT INTO {self._t(HEADS_TABLE)} VALUES ({', '.join([mark] * 6)})",
                    [
                        (
                            head.size,
                            head.root_hash,
                            head.map_root,
                            head.signed_at.isoformat(),
                            head.key_id,
                            head.signature,
                        )
                    ],
                ),
                (
                    f"INSERT INTO {self._t(MAP_ENTRIES)} VALUES ({', '.join([mark] * 5)})",
                    [
                        (e.stream_id.hex, head.size, stream_map.bucket_of(e.stream_id), e.version, e.stream_hash)
                        for e in entries
                    ],
                ),
                (
                    f"INSERT INTO {self._t(MAP_NODES)} VALUES ({', '.join([mark] * 3)})",
                    [(stream_map.node_key(d, i), head.size, h) for (d, i), h in nodes.items()],
                ),
            ]
        )


def _head(row: tuple[Any, ...]) -> SignedHead:
    return SignedHead(
        size=int(row[0]),
        root_hash=bytes(row[1]),
        map_root=bytes(row[2]),
        signed_at=datetime.fromisoformat(str(row[3])),
        key_id=str(row[4]),
        signature=bytes(row[5]),
    )
