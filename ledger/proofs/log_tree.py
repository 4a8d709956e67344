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
from ledger.proofs.merkle import LEVEL_SHIFT, append_nodes, event_leaf_hash, frontier, node_key

TREE_TABLE = "merkle_nodes"
CATCH_UP_BATCH = 5000

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


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
        self, query: Query, *, table: str, events: str, position: str, mark: str, insert: Callable[[list[Any]], None]
    ) -> None:
        self._query, self._insert = query, insert
        self.table, self.events, self.pos, self.mark = table, events, position, mark

    def size(self) -> int:
        """The number of leaves in the stored tree."""
        rows = self._query(tree_size_sql(self.table), [])
        return 0 if not rows or rows[0][0] is None else int(rows[0][0]) + 1

    def append(self, stored_events: Sequence[StoredEvent], positions: Sequence[int]) -> None:
        """Add the leaves of newly inserted events (at gap-free ``positions``)."""
        if not positions:
            return
        before = positions[0] - 1
        self.catch_up(before)
        leaves = [
            event_leaf_hash(p, _sid(e.originator_id), e.originator_version, e.topic, e.state)
            for e, p in zip(stored_events, positions, strict=True)
        ]
        self._append_leaves(before, leaves)

    def catch_up(self, before: int) -> int:
        """Append the leaves of the events up to position ``before`` the tree lacks (the tree was off, or
        the ledger older than it); returns how many."""
        start = size = self.size()
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
            leaves = [event_leaf_hash(int(r[0]), _sid(r[1]), int(r[2]), str(r[3]), bytes(r[4])) for r in rows]
            self._append_leaves(size, leaves)
            size += len(leaves)
        return size - start

    def _append_leaves(self, size: int, leaves: list[bytes]) -> None:
        keys = [node_key(level, index) for level, index in frontier(size)]
        known: dict[int, bytes] = {}
        if keys:
            rows = self._query(
                f"SELECT node, hash FROM {self.table} WHERE node IN ({','.join(self.mark for _ in keys)})", keys
            )
            known = {int(r[0]): bytes(r[1]) for r in rows}

        def get(level: int, index: int) -> bytes:
            found = known.get(node_key(level, index))
            if found is None:
                raise TreeMismatch(f"the Merkle tree lacks its node ({level}, {index}); run scripts.verify_ledger")
            return found

        new = append_nodes(size, leaves, get)
        self._insert([(node_key(level, index), h) for (level, index), h in new.items()])


def _sid(value: Any) -> str:
    return str(value)
