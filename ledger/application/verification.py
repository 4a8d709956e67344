"""Integrity verification: the hash chains recomputed, the Merkle tree, signed heads, batch MACs and
snapshots checked (the whole ledger or one number's streams), and the registrations whose data key is lost.
Damaged events are reported, never raised."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from uuid import UUID

from ledger.adapters.log import holders_in
from ledger.domain import errors
from ledger.domain.access import AccessLog
from ledger.domain.number import Number
from ledger.domain.subscriber import PERSONAL_DATA_TOPICS
from ledger.integrity import IntegrityReport, verify_chain, verify_streams
from ledger.proofs.batches import UNAUTHENTICATED
from ledger.proofs.verify import check_batches, check_ledger, check_streams

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ledger.adapters import EventLog
    from ledger.application.app import LedgerApplication
    from ledger.keys.tables import KeyTables


def keyless_registrations(reader: EventLog, keys: KeyTables, chunk: int = 2000) -> list[tuple[int, str]]:
    """(position, subscriber id) of every registration whose data key is lost: neither stored in the key
    store nor destroyed by an erasure (a tombstone), so its personal data can no longer be opened; in
    position order. Only which rows exist is read, never a key."""
    found: list[tuple[int, str]] = []
    batch: list[tuple[int, UUID]] = []

    def flush() -> None:
        missing = set(keys.keyless([sid for _, sid in batch]))
        found.extend((position, str(sid)) for position, sid in batch if sid in missing)
        batch.clear()

    # A stream whose first event carries personal data is a registration: its key was made with it.
    for topic in sorted(PERSONAL_DATA_TOPICS):
        for item in reader.first_events(topic):
            batch.append(item)
            if len(batch) >= chunk:
                flush()
    if batch:
        flush()
    found.sort()
    return found


def with_keyless(report: IntegrityReport, keyless: list[tuple[int, str]]) -> IntegrityReport:
    """A whole-ledger verification's report with its keyless registrations: not ok when there is any, the
    first one's position the first bad position unless the report names a problem already."""
    if not keyless:
        return report
    report = replace(report, keyless_registrations=tuple(keyless))
    if not report.ok:
        return report
    position, sid = keyless[0]
    problem = (
        f"{len(keyless)} registration(s) have neither a stored data key nor a tombstone: their personal data "
        f"can no longer be opened (the first at position {position}, subscriber {sid})"
    )
    return replace(report, ok=False, first_bad_position=position, stream=UUID(sid).hex, problem=problem)


def verify_integrity(
    app: LedgerApplication, number: str | None, up_to: int = 0, public: Ed25519PublicKey | None = None
) -> IntegrityReport:
    """Recompute the hash chains and check the Merkle tree and signed heads (verified with ``public``):
    the whole ledger, or the streams of one number, its holders and their access logs, proven complete
    as of the latest signed head. Snapshots (of the whole ledger, or of the number) must match a replay of
    their streams' events. Damaged events are reported, never raised."""
    if not number:
        chain = report = verify_chain(app.reader.chained(), up_to)
        if report.ok and app.proofs is not None:
            report = check_ledger(report, app.proofs, app.reader, public, up_to)
        if chain.ok:
            report = check_batches(report, app.batch_key, app.batches, app.reader, up_to=up_to)
        snapshot_ids = None
    else:
        number_id = Number.create_id(number)
        number_events = app.reader.stream_events([number_id]).get(number_id)
        if not number_events:
            raise errors.NumberNotFound(number)
        holders = holders_in(number_events)
        streams = [number_id, *holders, *(AccessLog.create_id(h) for h in holders)]
        chained = app.reader.chained_streams(streams)
        chain = report = verify_streams(iter(chained))
        if report.ok and app.proofs is not None:
            report = check_streams(report, app.proofs, app.reader, streams, chained, public)
        if chain.ok:
            report = check_batches(report, app.batch_key, app.batches, app.reader, events=chained)
        snapshot_ids = [number_id]
    if not report.ok and UNAUTHENTICATED in report.problem:
        app.refuse_writes(report.problem)
    if not report.ok or (up_to and not number):
        return report
    try:
        bad = app.verify_snapshots(snapshot_ids)
    except Exception as e:  # a stream that verified but does not replay: report it, never fail the call
        return replace(report, ok=False, problem=f"the events do not replay: {e}")
    if bad:
        stream_id, version = bad[0]
        problem = (
            f"the snapshot of stream {stream_id} at version {version} does not match its events "
            f"({len(bad)} snapshot(s) differ; snapshots are a cache and may be deleted)"
        )
        return replace(report, ok=False, problem=problem)
    return report
