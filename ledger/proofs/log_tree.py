"""The log's Merkle tree in the database: its complete subtrees in ``merkle_nodes`` (one row per node,
keyed by ``level << 48 | index``), appended in the transaction that inserts the events, on SQLite and
PostgreSQL alike (the in-memory store keeps a dict).

A ledger recorded before the tree existed, or with the tree turned off (``LEDGER_MERKLE_TREE=0``, for
measuring its cost), gets its missing leaves on the next insert with the tree on: the events not yet in
the tree are read in that same transaction and appended first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent

from ledger.domain import errors
from ledger.proofs.batches import BatchFeed
from ledger.proofs.merkle import LEVEL_SHIFT, append_nodes, event_leaf_hash, frontier, node_key

TREE_TABLE = "merkle_nodes"
CATCH_UP_BATCH = 5000

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
Frontier = tuple[int, dict[int, bytes]]  # a tree size and its frontier's nodes by key


class TreeMismatch(errors.RuleViolation):
    """Raised when the tree holds more leaves than the log has events before new ones, or lacks a node:
    events were removed from the log (a rollback or deletion); nothing is written over them."""

    reason = "LEDGER_TAMPERED"


def tree_size_sql(table: str) -> str:
    """The statement that reads the number of leaves (the highest level-0 key + 1)."""
    return f"SELECT MAX(node) FROM {table} WHERE node < {1 << LEVEL_SHIFT}"


class TreeAppender:
    """Appends events' leaves to the stored tree inside the caller's transaction."""

    def __init__(
        self,
        query: Query,
        *,
        table: str,
        events: str,
        position: str,
        mark: str,
        insert: Callable[[list[Any]], None],
        array: bool = False,
        feed: Callable[[], BatchFeed] | None = None,
    ) -> None:
        self._query, self._insert = query, insert
        # Events the tree catches up over must be ones a ledger server wrote (``ledger.proofs.batches``).
        self._feed = feed
        self.table, self.events, self.pos, self.mark = table, events, position, mark
        self.array = array  # PostgreSQL: one array parameter, so the statement is the same for any count

    def size(self) -> int:
        """The number of leaves in the stored tree."""
        rows = self._query(tree_size_sql(self.table), [])
        return 0 if not rows or rows[0][0] is None else int(rows[0][0]) + 1

    def append(
        self, stored_events: Sequence[StoredEvent], positions: Sequence[int], known: Frontier | None = None
    ) -> Frontier | None:
        """Add the leaves of newly inserted events (at gap-free ``positions``); returns the tree's frontier
        after them, which the caller may pass as ``known`` to its next append once this one committed
        (it is used only when the tree's size is still the one it was for: no other writer came between)."""
        if not positions:
            return known
        before = positions[0] - 1
        wanted = [node_key(level, index) for level, index in frontier(before)]
        if known is not None and known[0] == before:
            nodes = known[1]
        else:
            # One read: the frontier the new leaves join, and the first new leaf, which must not exist yet.
            # Only when the frontier is incomplete is the tree's size read (to catch up, or refuse).
            nodes = self._nodes([*wanted, node_key(0, before)])
            if node_key(0, before) in nodes or any(k not in nodes for k in wanted):
                self.catch_up(before)
                nodes = self._nodes(wanted)
        leaves = [
            event_leaf_hash(p, e.originator_id, e.originator_version, e.topic, e.state)
            for e, p in zip(stored_events, positions, strict=True)
        ]
        new = self._append_leaves(before, leaves, nodes)
        size = before + len(leaves)
        every = {**nodes, **{node_key(level, index): h for (level, index), h in new.items()}}
        return size, {k: every[k] for k in (node_key(level, index) for level, index in frontier(size))}

    def catch_up(self, before: int) -> int:
        """Append the leaves of the events up to position ``before`` the tree lacks (the tree was off, or
        the ledger older than it); returns how many."""
        start = size = self.size()
        feed = self._feed() if self._feed is not None and size < before else None
        if size > before:
            raise TreeMismatch(
                f"the Merkle tree holds {size} leaves but the log only {before} events: events were removed "
                "from the log; run scripts.verify_ledger"
            )
        while size < before:
            rows = self._query(
                f"SELECT {self.pos}, originator_id, originator_version, topic, state FROM {self.events} "
                f"WHERE {self.pos} > {self.mark} AND {self.pos} <= {self.mark} "
                f"ORDER BY {self.pos} LIMIT {CATCH_UP_BATCH}",
                [size, before],
            )
            if not rows or int(rows[0][0]) != size + 1:
                raise TreeMismatch(f"position {size + 1} is missing from the log; run scripts.verify_ledger")
            leaves = [event_leaf_hash(int(r[0]), r[1], int(r[2]), str(r[3]), bytes(r[4])) for r in rows]
            if feed is not None:
                for r, leaf in zip(rows, leaves, strict=True):
                    feed.add(int(r[0]), leaf)
            self._append_leaves(size, leaves)
            size += len(leaves)
        if feed is not None:
            feed.close()
        return size - start

    def _nodes(self, keys: list[int]) -> dict[int, bytes]:
        if not keys:
            return {}
        if self.array:
            rows = self._query(f"SELECT node, hash FROM {self.table} WHERE node = ANY({self.mark})", [keys])
        else:
            rows = self._query(
                f"SELECT node, hash FROM {self.table} WHERE node IN ({','.join(self.mark for _ in keys)})", keys
            )
        return {int(r[0]): bytes(r[1]) for r in rows}

    def _append_leaves(
        self, size: int, leaves: list[bytes], known: dict[int, bytes] | None = None
    ) -> dict[tuple[int, int], bytes]:
        found = self._nodes([node_key(level, index) for level, index in frontier(size)]) if known is None else known

        def get(level: int, index: int) -> bytes:
            node = found.get(node_key(level, index))
            if node is None:
                raise TreeMismatch(f"the Merkle tree lacks its node ({level}, {index}); run scripts.verify_ledger")
            return node

        new = append_nodes(size, leaves, get)
        self._insert([(node_key(level, index), h) for (level, index), h in new.items()])
        return new
