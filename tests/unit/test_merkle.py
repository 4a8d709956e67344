"""The log tree against a from-scratch reading of RFC 9162 (recursions over the leaf list itself), and
the stream-head map's proofs."""

from __future__ import annotations

import hashlib
from uuid import uuid4

import pytest

from ledger.proofs import stream_map
from ledger.proofs.merkle import (
    Builder,
    Tree,
    append_nodes,
    frontier,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


def h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def mth(d: list[bytes]) -> bytes:  # RFC 9162 2.1.1, over leaf inputs
    if not d:
        return h(b"")
    if len(d) == 1:
        return h(b"\x00" + d[0])
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return h(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:  # RFC 9162 2.1.3.1
    if len(d) <= 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return [*path(m, d[:k]), mth(d[k:])] if m < k else [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:  # RFC 9162 2.1.4.1
    if m == len(d):
        return [] if b else [mth(d)]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def stored_tree(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """The complete subtrees as the recorders store them, appended in uneven batches."""
    nodes: dict[tuple[int, int], bytes] = {}
    size, step = 0, 1
    while size < len(leaves):
        batch = [leaf_hash(x) for x in leaves[size : size + step]]
        nodes.update(append_nodes(size, batch, lambda level, index: nodes[(level, index)]))
        size += len(batch)
        step = step % 5 + 1
    return nodes


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 13, 32, 33])
def test_roots_and_proofs_match_the_rfc(n: int) -> None:
    leaves = [f"event {i}".encode() for i in range(n)]
    nodes = stored_tree(leaves)
    tree = Tree(n, lambda level, index: nodes[(level, index)])
    builder = Builder()
    for size in range(1, n + 1):
        builder.add(leaf_hash(leaves[size - 1]))
        assert tree.root(size) == mth(leaves[:size]) == builder.root()
        assert len(frontier(size)) == bin(size).count("1")
        for m in range(size):
            proof = tree.inclusion(m, size)
            assert proof == path(m, leaves[:size])
            assert verify_inclusion(leaf_hash(leaves[m]), m, size, proof, mth(leaves[:size]))
            assert not verify_inclusion(leaf_hash(b"other"), m, size, proof, mth(leaves[:size]))
        for old in range(1, size):
            proof = tree.consistency(old, size)
            assert proof == subproof(old, leaves[:size], True)
            assert verify_consistency(old, mth(leaves[:old]), size, mth(leaves[:size]), proof)
            forked = mth([b"forked", *leaves[1:old]])
            assert not verify_consistency(old, forked, size, mth(leaves[:size]), proof)


def test_a_map_proof_shows_a_streams_head_and_a_streams_absence() -> None:
    entries = [stream_map.Entry(uuid4(), v + 1, h(bytes([v]))) for v in range(50)]
    by_bucket: dict[int, list[stream_map.Entry]] = {}
    for e in entries:
        by_bucket.setdefault(stream_map.bucket_of(e.stream_id), []).append(e)
    nodes = stream_map.update({b: stream_map.bucket_hash(es) for b, es in by_bucket.items()}, {})
    root = nodes[(0, 0)]
    target = entries[7]
    bucket = stream_map.bucket_of(target.stream_id)
    siblings = stream_map.path(bucket, nodes)
    found, problem = stream_map.verify(target.stream_id, by_bucket[bucket], siblings, root)
    assert found == target and problem == ""
    # An older version of the stream in its place (a deleted last event) does not verify.
    older = [
        stream_map.Entry(e.stream_id, e.version - 1, e.stream_hash) if e == target else e for e in by_bucket[bucket]
    ]
    assert stream_map.verify(target.stream_id, older, siblings, root)[0] is None
    # A stream the map does not hold is shown absent.
    absent = uuid4()
    b2 = stream_map.bucket_of(absent)
    found, problem = stream_map.verify(absent, by_bucket.get(b2, []), stream_map.path(b2, nodes), root)
    assert found is None and problem == ""
    # Updating one bucket later rewrites its path only, and the result equals a rebuild.
    changed = stream_map.Entry(target.stream_id, target.version + 1, h(b"next"))
    by_bucket[bucket] = [changed if e.stream_id == target.stream_id else e for e in by_bucket[bucket]]
    later = stream_map.update({bucket: stream_map.bucket_hash(by_bucket[bucket])}, nodes)
    rebuilt = stream_map.update({b: stream_map.bucket_hash(es) for b, es in by_bucket.items()}, {})
    assert later[(0, 0)] == rebuilt[(0, 0)] != root
