"""The Merkle tree over the log (RFC 9162, Certificate Transparency 2.0, section 2.1): hashes, roots,
inclusion and consistency proofs and their verification. Pure functions only.

Leaf ``i`` (0-based) is the event at position ``i + 1``; its input is the stored event (position, stream
id, version, topic, stored bytes), so a changed, moved or reordered event changes its leaf. Node hashes
are ``SHA-256(0x00 || leaf)`` and ``SHA-256(0x01 || left || right)``.

The store keeps every complete subtree (``level``, ``index``): the hash of leaves ``[index * 2**level,
(index + 1) * 2**level)``. Any tree head, inclusion or consistency proof then needs O(log n) of them:
``needed`` lists which, so a reader fetches them in one query and ``Tree`` computes from them.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Sequence
from uuid import UUID

LEAF, NODE = b"\x00", b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162: the hash of an empty list
LEVEL_SHIFT = 48  # a stored node's key: level << 48 | index (trees of up to 2**48 leaves)

Get = Callable[[int, int], bytes]
_HEAD, _LEN = struct.Struct(">Q16sQI"), struct.Struct(">Q")


def leaf_input(position: int, stream_id: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """The bytes of one event's leaf."""
    sid = stream_id.bytes if isinstance(stream_id, UUID) else UUID(str(stream_id)).bytes
    t = topic.encode()
    return b"".join((_HEAD.pack(position, sid, version, len(t)), t, _LEN.pack(len(state)), state))


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 leaf hash."""
    return hashlib.sha256(LEAF + leaf).digest()


def event_leaf_hash(position: int, stream_id: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """The leaf hash of one stored event."""
    return leaf_hash(leaf_input(position, stream_id, version, topic, state))


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash."""
    return hashlib.sha256(NODE + left + right).digest()


def node_key(level: int, index: int) -> int:
    """The integer key a complete subtree is stored under."""
    return level << LEVEL_SHIFT | index


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def frontier(size: int) -> list[tuple[int, int]]:
    """The complete subtrees a tree of ``size`` leaves decomposes into, left to right."""
    out, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


def append_nodes(size: int, leaves: Sequence[bytes], get: Get) -> dict[tuple[int, int], bytes]:
    """The complete subtrees (level, index) -> hash that appending these leaf hashes to a tree of ``size``
    leaves creates; ``get`` returns a subtree of the old frontier (``frontier(size)``)."""
    new: dict[tuple[int, int], bytes] = {}
    for offset, leaf in enumerate(leaves):
        i = size + offset
        new[(0, i)] = leaf
        level, count = 0, i + 1
        while count % (2 << level) == 0:  # the subtree ending here at level + 1 is now complete
            j = (count >> (level + 1)) - 1
            left_key, right_key = (level, 2 * j), (level, 2 * j + 1)
            left = new[left_key] if left_key in new else get(*left_key)
            new[(level + 1, j)] = node_hash(left, new[right_key])
            level += 1
    return new


class Tree:
    """Heads and proofs of a tree of ``size`` leaves whose complete subtrees ``get`` returns."""

    def __init__(self, size: int, get: Get) -> None:
        self.size, self._get = size, get

    def hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for an aligned range (as every range of the RFC's recursions is)."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0:
            level = n.bit_length() - 1
            return self._get(level, lo >> level)
        k = _split(n)
        return node_hash(self.hash(lo, lo + k), self.hash(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the first ``size`` leaves (the whole tree by default)."""
        return self.hash(0, self.size if size is None else size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]): the audit path of leaf ``index`` in the tree of ``size`` leaves."""
        return self._path(index, 0, size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n <= 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, lo, lo + k), self.hash(lo + k, hi)]
        return [*self._path(m - k, lo + k, hi), self.hash(lo, lo + k)]

    def consistency(self, old: int, new: int) -> list[bytes]:
        """PROOF(old, D[0:new]): that the tree of ``new`` leaves extends the one of ``old`` leaves."""
        if old <= 0 or old >= new:
            return []
        return self._subproof(old, 0, new, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self.hash(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete), self.hash(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self.hash(lo, lo + k)]


def needed(compute: Callable[[Tree], object], size: int) -> list[tuple[int, int]]:
    """The complete subtrees ``compute`` reads from a tree of ``size`` leaves (run once without hashes)."""
    keys: list[tuple[int, int]] = []

    def record(level: int, index: int) -> bytes:
        keys.append((level, index))
        return bytes(32)

    compute(Tree(size, record))
    return list(dict.fromkeys(keys))


def root_of(leaves: Iterable[bytes]) -> bytes:
    """The root over leaf hashes, computed from scratch (the offline rebuild)."""
    builder = Builder()
    for leaf in leaves:
        builder.add(leaf)
    return builder.root()


class Builder:
    """A tree built leaf by leaf in memory, keeping only its frontier (O(log n) hashes)."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (level, hash) of the frontier, left to right

    def add(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        level, h = 0, leaf
        while self._stack and self._stack[-1][0] == level:
            h = node_hash(self._stack.pop()[1], h)
            level += 1
        self._stack.append((level, h))
        self.size += 1

    def root(self) -> bytes:
        """The current root hash."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` in the tree ``(size, root)``?"""
    if index >= size or index < 0:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(old: int, old_root: bytes, new: int, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: does ``proof`` show the tree ``(new, new_root)`` extends ``(old, old_root)``?"""
    if old == new:
        return old_root == new_root and not proof
    if old <= 0 or old > new or not proof:
        return old == 0 and not proof
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node of the path
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
