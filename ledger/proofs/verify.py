"""Verifications that use the tree, the signed heads and the stream-head map, online (the server) and
offline (``scripts/verify_ledger``). Each returns a report, never raises on damaged data:

- ``check_ledger``: after the hash chains verified, the log against its tree and every signed head:
  each event's leaf must be the stored one, the rebuilt root at each head's size its signed root, the
  tree no larger than the log (events after the last head deleted), no head beyond the log (a rollback);
- ``check_streams``: one number's streams as of the latest signed head: each event included in that head,
  each stream's last version and hash the ones its map entry holds (a deleted last event, a deleted or
  rehashed event), and the log after the head gap-free and matching the tree.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ledger.integrity import IntegrityReport
from ledger.proofs import stream_map
from ledger.proofs.batches import (
    MACS_FROM,
    UNAUTHENTICATED,
    BatchKey,
    BatchStore,
    check_log,
    check_positions,
    untreed_problem,
)
from ledger.proofs.heads import verify_head
from ledger.proofs.log_tree import TreeMismatch
from ledger.proofs.merkle import Builder, event_leaf_hash, verify_inclusion

if TYPE_CHECKING:
    from collections.abc import Sequence
    from uuid import UUID

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ledger.integrity import ChainedEvent
    from ledger.proofs.heads import SignedHead
    from ledger.proofs.store import ProofStore


def _bad(report: IntegrityReport, position: int, problem: str, stream: str = "") -> IntegrityReport:
    checked = max(0, position - 1) if position else report.events_checked
    return replace(
        report, ok=False, first_bad_position=position, problem=problem, stream=stream, events_checked=checked
    )


def check_heads(heads: Sequence[SignedHead], public: Ed25519PublicKey | None) -> tuple[int, str]:
    """(size, problem) of the first head whose signature does not verify; (0, "") when all do."""
    if public is None:
        return 0, ""
    for head in heads:
        problem = verify_head(head, public)
        if problem:
            return head.size, problem
    return 0, ""


def check_ledger(
    report: IntegrityReport, store: ProofStore, reader: Any, public: Ed25519PublicKey | None, up_to: int = 0
) -> IntegrityReport:
    """The whole-ledger checks that follow a successful chain verification (``report``)."""
    events = report.head_position
    if up_to and up_to > events:
        return _bad(report, events + 1, f"the ledger ends at position {events}, before position {up_to}: rolled back?")
    heads = store.heads()
    tree_size = store.tree_size()
    # Read after the heads and the tree: commands committed meanwhile only make the log longer.
    end = max(events, reader.max_position())
    size, problem = check_heads(heads, public)
    if problem:
        return replace(_bad(report, 0, problem), signed_head_size=size)
    beyond = [h for h in heads if h.size > end]
    if beyond and not up_to:
        last = beyond[-1]
        return replace(
            _bad(
                report,
                events + 1,
                f"the log ends at position {events} but a head was signed at size {last.size}: "
                "events were removed or the ledger was rolled back below a signed head",
            ),
            signed_head_size=last.size,
        )
    limit = up_to or events
    marks = store.marks()
    start = marks[MACS_FROM].position if MACS_FROM in marks else (1 << 62)
    position, problem = untreed_problem(marks, start, tree_size, limit)
    if position:
        return _bad(report, position, problem)
    if not up_to and tree_size > end:
        return _bad(
            report,
            events + 1,
            f"the Merkle tree records {tree_size} events but the log holds {events}: "
            f"events after position {events} were deleted",
        )
    at = {h.size: h for h in heads if h.size <= limit}
    builder = Builder()
    batch: list[ChainedEvent] = []

    def flush() -> IntegrityReport | None:
        stored = store.leaf_hashes([e.position for e in batch])
        for e in batch:
            leaf = event_leaf_hash(e.position, e.stream_id, e.version, e.topic, e.state)
            if e.position <= tree_size and stored.get(e.position) != leaf:
                return _bad(report, e.position, "the event is not the one the Merkle tree recorded", e.stream_id)
            builder.add(leaf)
            head = at.get(builder.size)
            if head is not None and builder.root() != head.root_hash:
                return replace(
                    _bad(report, e.position, f"the log up to here does not give the root signed at size {head.size}"),
                    signed_head_size=head.size,
                )
        batch.clear()
        return None

    for e in reader.chained():
        if e.position > limit:
            break
        batch.append(e)
        if len(batch) >= 5000 and (bad := flush()):
            return bad
    if batch and (bad := flush()):
        return bad
    latest = max(at) if at else 0
    return replace(report, signed_head_size=latest)


def check_streams(
    report: IntegrityReport,
    store: ProofStore,
    reader: Any,
    stream_ids: Sequence[UUID],
    events: Sequence[ChainedEvent],
    public: Ed25519PublicKey | None,
) -> IntegrityReport:
    """The per-number checks that follow a successful verification of the streams' chains."""
    head = store.head()
    if head is None:
        return report
    problem = check_heads([head], public)[1]
    if problem:
        return replace(_bad(report, 0, problem), signed_head_size=head.size)
    tree_size = store.tree_size()
    log_end = reader.max_position()  # after the head and the tree: the log can only have grown since
    if log_end < head.size:
        return replace(
            _bad(report, log_end + 1, f"the log ends at position {log_end} but a head was signed at size {head.size}"),
            signed_head_size=head.size,
        )
    covered = [e for e in events if e.position <= head.size]
    leaves = store.leaf_hashes([e.position for e in events])
    for e in covered:
        leaf = event_leaf_hash(e.position, e.stream_id, e.version, e.topic, e.state)
        try:
            proof = store.inclusion(e.position - 1, head.size)
        except TreeMismatch:
            proof = []  # the path cannot be built: the event is reported as not included
        if not verify_inclusion(leaf, e.position - 1, head.size, proof, head.root_hash):
            return replace(
                _bad(
                    report,
                    e.position,
                    f"the event is not the one the head signed at size {head.size} holds",
                    e.stream_id,
                ),
                signed_head_size=head.size,
            )
    for e in events:
        if e.position > head.size and leaves.get(e.position) != event_leaf_hash(
            e.position, e.stream_id, e.version, e.topic, e.state
        ):
            return _bad(report, e.position, "the event is not the one the Merkle tree recorded", e.stream_id)
    for sid in stream_ids:
        mine = [e for e in covered if e.stream_id == sid.hex]
        entries, siblings = store.map_proof(sid, head.size)
        entry, problem = stream_map.verify(sid, entries, siblings, head.map_root)
        last = mine[-1] if mine else None
        if not problem and entry is None and last is not None:
            problem = f"stream {sid.hex} has events the head signed at size {head.size} does not record"
        elif not problem and entry is not None and (last is None or last.version != entry.version):
            problem = (
                f"stream {sid.hex}: the head signed at size {head.size} records version {entry.version}, "
                f"the log holds {last.version if last else 0}: events were deleted"
            )
        elif not problem and entry is not None and last is not None and last.stream_hash != entry.stream_hash:
            problem = f"stream {sid.hex}: its events were rewritten after the head signed at size {head.size}"
        if problem:
            position = last.position if last else 0
            return replace(_bad(report, position, problem, sid.hex), signed_head_size=head.size)
    missing = log_end - head.size - reader.count_after(head.size)
    if missing > 0:
        return replace(
            _bad(report, 0, f"{missing} event(s) after the head signed at size {head.size} were deleted"),
            signed_head_size=head.size,
        )
    if tree_size > log_end:
        return replace(
            _bad(
                report,
                min(tree_size, log_end) + 1,
                f"the Merkle tree records {tree_size} events but the log holds {log_end}: events were deleted",
            ),
            signed_head_size=head.size,
        )
    return replace(report, signed_head_size=head.size)


def check_batches(
    report: IntegrityReport,
    key: BatchKey | None,
    store: BatchStore,
    reader: Any,
    *,
    up_to: int = 0,
    events: Sequence[ChainedEvent] | None = None,
) -> IntegrityReport:
    """After the chains verified: every event from the store's ``macs_from`` lies in a batch whose MAC
    (under ``key``) verifies, the whole ledger's (up to ``up_to``) or these ``events``' (one number's
    streams). An event no server wrote is reported even when the tree or head checks already failed: it
    is the cause (a forged event under a signed head is found where it is, not where the signed root
    stops matching, nor at the first event whose proof the rewritten tree breaks).
    Without the key (an auditor without the master key) nothing is checked."""
    if key is None:
        return report
    if events is None:
        position, problem = check_log(key, store, reader, up_to)
    else:
        position, problem = check_positions(key, store, reader, [e.position for e in events])
    if not problem or (not report.ok and UNAUTHENTICATED not in problem):
        return report
    stream = next((e.stream_id for e in events or () if e.position == position), "")
    return _bad(report, position, problem, stream)
