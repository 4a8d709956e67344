"""The map of stream heads: stream -> (latest version, stream hash), authenticated by one root that
each signed head commits to. Pure functions only.

The map is a fixed-depth Merkle tree of ``2**DEPTH`` buckets. A stream's key is ``SHA-256(stream id)``;
its bucket is the key's first ``DEPTH`` bits. A bucket's hash covers all its entries, sorted by key;
a proof for a stream is its whole bucket (a few entries: about one per 65,536 streams) and the
``DEPTH`` sibling hashes up to the root. Because a bucket lists every stream it holds, the same proof
shows a stream absent, or present with exactly one version: a history proven against it is complete.

Only buckets whose streams changed since the previous head are rehashed when a head is signed (with
the nodes above them), so the commit path pays nothing for the map.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

DEPTH = 16
LEAF, NODE = b"\x00", b"\x01"


@dataclass(frozen=True)
class Entry:
    """One stream's head in the map."""

    stream_id: UUID
    version: int
    stream_hash: bytes

    @property
    def key(self) -> bytes:
        """The stream's map key."""
        return stream_key(self.stream_id)


def stream_key(stream_id: UUID) -> bytes:
    """The map key of a stream."""
    return hashlib.sha256(stream_id.bytes).digest()


def bucket_of(stream_id: UUID) -> int:
    """The bucket a stream's entry lives in."""
    return int.from_bytes(stream_key(stream_id)[:4], "big") >> (32 - DEPTH)


def bucket_hash(entries: Iterable[Entry]) -> bytes:
    """The hash of one bucket: its entries sorted by key (an empty bucket hashes the empty string)."""
    h = hashlib.sha256(LEAF)
    for e in sorted(entries, key=lambda e: e.key):
        h.update(e.key + e.stream_id.bytes + struct.pack(">Q", e.version) + e.stream_hash)
    return h.digest()


def _empty_levels() -> list[bytes]:
    # empty[d]: the hash of an all-empty subtree whose top is at depth d (DEPTH: a bucket).
    out = [b""] * (DEPTH + 1)
    out[DEPTH] = bucket_hash([])
    for d in range(DEPTH - 1, -1, -1):
        out[d] = hashlib.sha256(NODE + out[d + 1] + out[d + 1]).digest()
    return out


EMPTY = _empty_levels()
EMPTY_MAP_ROOT = EMPTY[0]


def node_key(depth: int, index: int) -> int:
    """The integer key a map node is stored under (depth 0 is the root, DEPTH the buckets)."""
    return depth << 32 | index


def update(changed: Mapping[int, bytes], current: Mapping[tuple[int, int], bytes]) -> dict[tuple[int, int], bytes]:
    """The nodes (depth, index) -> hash that rehashing the ``changed`` buckets (index -> new bucket hash)
    rewrites, given ``current`` nodes (only siblings of the rewritten path are read; absent ones are
    empty). The root is ``result[(0, 0)]``."""
    new: dict[tuple[int, int], bytes] = {(DEPTH, b): h for b, h in changed.items()}
    level = set(changed)
    for depth in range(DEPTH, 0, -1):
        parents = {i >> 1 for i in level}
        for p in parents:
            left = new.get((depth, 2 * p)) or current.get((depth, 2 * p)) or EMPTY[depth]
            right = new.get((depth, 2 * p + 1)) or current.get((depth, 2 * p + 1)) or EMPTY[depth]
            new[(depth - 1, p)] = hashlib.sha256(NODE + left + right).digest()
        level = parents
    return new


def siblings_needed(buckets: Iterable[int]) -> list[tuple[int, int]]:
    """The nodes ``update`` may read for these buckets (the siblings along their paths)."""
    out: set[tuple[int, int]] = set()
    for b in buckets:
        for depth in range(DEPTH, 0, -1):
            out.add((depth, (b >> (DEPTH - depth)) ^ 1))
    return sorted(out)


def path(bucket: int, get: Mapping[tuple[int, int], bytes]) -> list[bytes]:
    """The sibling hashes from a bucket up to the root (bucket level first)."""
    return [get.get((depth, (bucket >> (DEPTH - depth)) ^ 1), EMPTY[depth]) for depth in range(DEPTH, 0, -1)]


def verify(
    stream_id: UUID, entries: Sequence[Entry], siblings: Sequence[bytes], root: bytes
) -> tuple[Entry | None, str]:
    """Check a map proof (the stream's whole bucket and its path) against a map root: (the stream's entry,
    or None when the map holds none, "") or (None, the problem)."""
    bucket = bucket_of(stream_id)
    if len(siblings) != DEPTH:
        return None, f"a map proof has {DEPTH} sibling hashes, this one {len(siblings)}"
    keys = [e.key for e in entries]
    if any(bucket_of(e.stream_id) != bucket for e in entries) or len(set(keys)) != len(keys):
        return None, "the map proof's bucket holds entries of other buckets or one stream twice"
    h = bucket_hash(entries)
    for depth, sibling in zip(range(DEPTH, 0, -1), siblings, strict=True):
        index = bucket >> (DEPTH - depth)
        h = hashlib.sha256(NODE + (sibling + h if index & 1 else h + sibling)).digest()
    if h != root:
        return None, "the map proof does not lead to the signed map root"
    found = [e for e in entries if e.stream_id == stream_id]
    return (found[0] if found else None), ""
