"""Signing a tree head: the server does it at an interval (policy ``signed_head_interval_seconds``), and
``ledger head`` or ``GetSignedHead(fresh)`` on demand.

Nothing is signed over a log that no longer matches what was signed before: the events since the
previous head are checked (gap-free positions, each one's leaf against the stored tree, each stream's
chain continuing from the version the previous head's map holds), the stored tree must extend the
previous head (a consistency proof), and the map's stored nodes must give the previous head's map root.
Only then are the changed streams' map entries written and the new head signed. The work is
proportional to the events since the previous head, not to the ledger, and what it holds in memory is
bounded: a log far ahead of its last head is signed in steps, and the map's buckets are rehashed a slice at
a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.domain import errors
from ledger.integrity import GENESIS, stream_hash
from ledger.proofs import stream_map
from ledger.proofs.batches import BatchFeed, LedgerTampered, batch_reader, macs_from
from ledger.proofs.merkle import EMPTY_ROOT, event_leaf_hash, verify_consistency

if TYPE_CHECKING:
    from ledger.proofs.batches import BatchKey
    from ledger.proofs.heads import HeadSigner, SignedHead
    from ledger.proofs.store import ProofStore


class HeadRefused(errors.RuleViolation):
    """Raised when a head cannot be signed because the log no longer matches the tree or an earlier
    head (a deletion, an edit or a rollback); the message says where."""

    reason = "LEDGER_TAMPERED"

    def __init__(self, message: str, position: int = 0, stream: str = "") -> None:
        super().__init__(message, position=str(position), stream=stream)
        self.position, self.stream = position, stream


# The most events one head adds: a log far ahead of its last head (a bulk import, heads switched off for a
# while) is signed in steps, each checking and holding this many events' streams at most.
MAX_EVENTS_PER_HEAD = 200_000
# The map's buckets read and rehashed at a time (each bucket lists its streams; all of them together are
# every stream of the ledger).
BUCKETS_AT_ONCE = 1024


def publish(
    store: ProofStore, reader: Any, signer: HeadSigner, key: BatchKey, step: int = MAX_EVENTS_PER_HEAD
) -> SignedHead:
    """Sign a head at the tree's current size (the latest head when the log has not grown since); every
    event it adds must lie in a batch a ledger server authenticated (under ``key``). A log more than
    ``step`` events past the previous head gets a head every ``step`` events on the way, so what one head
    checks and holds in memory stays bounded however far behind the heads are."""
    target = store.tree_size()  # the steps stop there, however the log grows meanwhile
    while True:
        previous = store.head()
        head = _publish(store, reader, signer, key, previous, step)
        if (previous is not None and head.size <= previous.size) or head.size >= target:
            return head


def _publish(
    store: ProofStore, reader: Any, signer: HeadSigner, key: BatchKey, previous: SignedHead | None, step: int
) -> SignedHead:
    size = store.tree_size()  # first: the log read after it can only have grown (tree and events commit together)
    events = reader.max_position()
    if size > events:
        raise HeadRefused(
            f"the Merkle tree holds {size} leaves but the log ends at position {events}: events were removed",
            position=events + 1,
        )
    old = previous.size if previous else 0
    if previous is not None and previous.size > size:
        raise HeadRefused(f"the log ({size} events) is shorter than the head signed at size {previous.size}")
    if previous is not None and previous.size == size:
        return previous
    if size > old + step:
        # A step ends where a committed batch ends: a head inside one would read as a batch that lost events.
        batch = store.batch_at(old + step)
        size = min(size, batch.last if batch is not None else old + step)
    try:
        feed = BatchFeed(key, macs_from(key, store.marks(), bool(store.batches(0, 1))), batch_reader(store))
    except LedgerTampered as t:
        raise HeadRefused(str(t.args[0]), t.position) from None
    changed = check_since(store, reader, old, size, feed)
    root = store.root(size) if size else EMPTY_ROOT
    if previous is not None and old:
        proof = store.consistency(old, size)
        if not verify_consistency(old, previous.root_hash, size, root, proof):
            raise HeadRefused(f"the stored Merkle tree does not extend the head signed at size {old}")
    changes: dict[int, list[stream_map.Entry]] = {}
    for e in changed:
        changes.setdefault(stream_map.bucket_of(e.stream_id), []).append(e)
    buckets = sorted(changes)
    # Each changed bucket's hash before and after, a slice of buckets at a time: only the hashes are kept.
    hashes_before: dict[int, bytes] = {}
    hashes_after: dict[int, bytes] = {}
    for start in range(0, len(buckets), BUCKETS_AT_ONCE):
        chunk = buckets[start : start + BUCKETS_AT_ONCE]
        before = store.map_entries(chunk, old)
        for b in chunk:
            hashes_before[b] = stream_map.bucket_hash(before[b])
            after: dict[UUID, stream_map.Entry] = {e.stream_id: e for e in before[b]}
            after.update((e.stream_id, e) for e in changes[b])
            hashes_after[b] = stream_map.bucket_hash(after.values())
    current = store.map_nodes(stream_map.siblings_needed(buckets), old)
    if previous is not None and buckets:
        again = stream_map.update(hashes_before, current)
        if again[(0, 0)] != previous.map_root:
            raise HeadRefused(f"the stored stream map no longer gives the map root signed at size {old}")
    nodes = stream_map.update(hashes_after, current) if buckets else {}
    map_root = nodes[(0, 0)] if nodes else (previous.map_root if previous else stream_map.EMPTY_MAP_ROOT)
    head = signer.sign(size, root, map_root)
    try:
        store.save_head(head, changed, nodes)
    except Exception:
        # Another process signed this size first (heads are kept by size): serve that one.
        existing = store.head(size)
        if existing is None:
            raise
        return existing
    return head


def check_since(
    store: ProofStore, reader: Any, old: int, size: int, feed: BatchFeed | None = None
) -> list[stream_map.Entry]:
    """Check the events after position ``old`` up to ``size`` (and their batches' MACs with ``feed``) and
    return the changed streams' heads."""
    heads: dict[str, stream_map.Entry] = {}
    expected = old + 1
    batch: list[Any] = []

    def flush() -> None:
        leaves = store.leaf_hashes([e.position for e in batch])
        unknown = {e.stream_id for e in batch if e.stream_id not in heads}
        ids = [UUID(s) for s in unknown]
        by_bucket = store.map_entries(sorted({stream_map.bucket_of(s) for s in ids}), old) if ids else {}
        for entries in by_bucket.values():
            for entry in entries:
                if entry.stream_id.hex in unknown:  # a bucket's other streams are not this batch's concern
                    heads.setdefault(entry.stream_id.hex, entry)
        for e in batch:
            leaf = event_leaf_hash(e.position, e.stream_id, e.version, e.topic, e.state)
            if leaves.get(e.position) != leaf:
                raise HeadRefused(
                    f"the event at position {e.position} is not the one the Merkle tree recorded",
                    e.position,
                    e.stream_id,
                )
            if feed is not None:
                try:
                    feed.add(e.position, leaf)
                except LedgerTampered as t:
                    raise HeadRefused(str(t.args[0]), t.position, e.stream_id) from None
            prior = heads.get(e.stream_id)
            version, previous_hash = (prior.version, prior.stream_hash) if prior else (0, GENESIS)
            if e.version != version + 1:
                raise HeadRefused(
                    f"stream {e.stream_id} goes from version {version} to {e.version}", e.position, e.stream_id
                )
            digest = stream_hash(previous_hash, e.stream_id, e.version, e.topic, e.state)
            if digest != e.stream_hash:
                raise HeadRefused("event content does not match its stream hash", e.position, e.stream_id)
            heads[e.stream_id] = stream_map.Entry(UUID(e.stream_id), e.version, digest)
        batch.clear()

    touched: set[str] = set()
    for e in reader.chained(after=old):
        if e.position > size:
            break
        if e.position != expected:
            raise HeadRefused(f"position {expected} is missing from the log", expected)
        expected += 1
        batch.append(e)
        touched.add(e.stream_id)
        if len(batch) >= 5000:
            flush()
    flush()
    if expected != size + 1:
        raise HeadRefused(f"position {expected} is missing from the log", expected)
    if feed is not None:
        try:
            feed.close()
        except LedgerTampered as t:
            raise HeadRefused(str(t.args[0]), t.position) from None
    return [heads[s] for s in sorted(touched)]
