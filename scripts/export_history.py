"""Export a number's or a subscriber's full history as JSON lines, with the hash chains, for a regulator.

Line 1 is a header (what was exported, the ledger head position and digest at export time, and the
latest signed tree head, or the one of ``--head-size``); then one line per event, in ledger order,
carrying the stored bytes (base64), both chain hashes and the previous global hash, its inclusion proof
in the signed head, and the event's fields decoded for reading; the last line is a footer with the
count and each stream's map proof (its head as of the signed head). With a signed head the export is
the history as of that head: sign one first (``ledger head``) to export everything.
``python -m scripts.verify_export FILE --public-key KEY`` checks an export without the database.

Personal data stays encrypted in the export unless ``--include-personal-data --purpose ...`` is given;
then it is decrypted with the operator's keys and the read is recorded in the ledger.

    python -m scripts.export_history --db sqlite:///ledger.db --number +8613800138000 -o export.jsonl
    python -m scripts.export_history --db sqlite:///ledger.db --subscriber 6f1c... -o export.jsonl
"""

from __future__ import annotations

import argparse
import base64
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder

from ledger.adapters import open_read_only
from ledger.adapters.log import LogReader, stored_transcoder
from ledger.cli import RunFailed, UsageError, add_db_argument, existing_store, one_line_errors, partial_name
from ledger.config import Settings
from ledger.domain import errors
from ledger.domain.access import AccessLog
from ledger.domain.identifiers import InvalidValue, parse_msisdn
from ledger.domain.number import Number
from ledger.domain.subscriber import PERSONAL_DATA_TOPICS, sealed_personal_data
from ledger.integrity import GENESIS

if TYPE_CHECKING:
    from ledger.integrity import ChainedEvent
    from ledger.proofs.store import ProofStore

FORMAT = "ledger-export-v1"
HIDDEN = {"personal_data", "identity_key"}


def readable(state: bytes, codec: JSONTranscoder) -> dict[str, Any]:
    """An event's stored fields, decoded, without ciphertext and identity keys, as JSON values; ValueError
    (or TypeError) when the stored bytes do not decode."""
    return {k: _plain(v) for k, v in codec.decode(state).items() if k not in HIDDEN}


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def stream_ids(reader: LogReader, number: str | None, subscriber: UUID | None) -> list[UUID]:
    """The streams of the export: a number with its holders, or a subscriber, each with its access log."""
    if subscriber is not None:
        return [subscriber, AccessLog.create_id(subscriber)]
    if number is None:
        raise UsageError("give the number or the subscriber to export")
    number_id = Number.create_id(number)
    holders = reader.holders_of(number_id)
    return [number_id, *holders, *(AccessLog.create_id(h) for h in holders)]


def export(
    db: str,
    out: Any,
    number: str | None = None,
    subscriber: UUID | None = None,
    personal: dict[str, dict[str, Any] | None] | None = None,
    head_size: int = 0,
) -> int:
    """Write the export (from an SQLite or PostgreSQL store, read-only); returns the number of events."""
    log = open_read_only(existing_store(db))  # one consistent view for the whole export
    codec = stored_transcoder()
    try:
        reader: LogReader = log.reader
        proofs: ProofStore = log.proofs
        head_position, head_digest = reader.head()
        ids = stream_ids(reader, number, subscriber)
        signed = proofs.head(head_size) if head_size else proofs.head()
        if head_size and signed is None:
            raise RunFailed(f"no head was signed at size {head_size} (see GetSignedHead or ledger head)")
        events = reader.chained_streams(ids)
        if not events:
            raise RunFailed("nothing to export (unknown number or subscriber)")
        if signed is not None:  # the history as of the signed head, every event with its proof
            events = [e for e in events if e.position <= signed.size]
            if not events:
                raise RunFailed(
                    f"nothing of it is in the signed head at size {signed.size}; sign a newer one (ledger head)"
                )
        previous = reader.chain_hashes([e.position - 1 for e in events])
        header = {
            "kind": "header",
            "format": FORMAT,
            "number": number or "",
            "subscriber_id": str(subscriber or ""),
            "exported_at": datetime.now(UTC).isoformat(),
            "ledger_head_position": head_position,
            "ledger_head_digest": head_digest.hex() if head_digest else "",
            "streams": [str(i) for i in ids],
            "signed_head": signed.to_json() if signed is not None else None,
        }
        out.write(orjson.dumps(header) + b"\n")
        for e in events:
            line: dict[str, Any] = {
                "kind": "event",
                "position": e.position,
                "stream_id": str(UUID(e.stream_id)),
                "version": e.version,
                "topic": e.topic,
                "state": base64.b64encode(e.state).decode(),
                "stream_hash": e.stream_hash.hex() if e.stream_hash else "",
                "chain_hash": e.chain_hash.hex() if e.chain_hash else "",
                "previous_chain_hash": previous.get(e.position - 1, GENESIS).hex(),
                "data": _data(e, codec),
            }
            if signed is not None:
                line["inclusion_proof"] = [h.hex() for h in proofs.inclusion(e.position - 1, signed.size)]
            if personal is not None and e.topic in PERSONAL_DATA_TOPICS:
                line["personal_data"] = personal.get(str(UUID(e.stream_id)))
            out.write(orjson.dumps(line) + b"\n")
        footer: dict[str, Any] = {"kind": "footer", "events": len(events)}
        if signed is not None:
            footer["stream_heads"] = [stream_head_proof(proofs, sid, signed.size) for sid in ids]
        out.write(orjson.dumps(footer) + b"\n")
        return len(events)
    finally:
        log.close()


def _data(e: ChainedEvent, codec: JSONTranscoder) -> dict[str, Any]:
    """The readable fields of an exported event; EventUndecodable (no export) when its state does not decode,
    as GetNumberHistory answers DATA_LOSS: an export is the history, never a part of it."""
    try:
        return readable(e.state, codec)
    except (ValueError, TypeError, AttributeError):
        raise errors.EventUndecodable(e.position, str(UUID(e.stream_id)), e.version) from None


def stream_head_proof(proofs: ProofStore, stream_id: UUID, head_size: int) -> dict[str, Any]:
    """A stream's map proof as of a signed head, as JSON values."""
    entries, siblings = proofs.map_proof(stream_id, head_size)
    return {
        "stream_id": str(stream_id),
        "entries": [
            {"stream_id": str(e.stream_id), "version": e.version, "stream_hash": e.stream_hash.hex()} for e in entries
        ],
        "siblings": [h.hex() for h in siblings],
    }


def decrypt_personal_data(db: str, number: str | None, subscriber: UUID | None, purpose: str) -> dict[str, Any]:
    """Decrypt the subscribers' personal data with the operator's keys, recording the read first."""
    from ledger.application.reads import number_history
    from ledger.bootstrap import open_ledger

    app = open_ledger(Settings.build(db=db))
    try:
        if number:
            items = number_history(app, number, True, actor="export_history", purpose=purpose)
            return {str(i.subscriber_id): i.personal_data for i in items if sealed_personal_data(i.event) is not None}
        if subscriber is None:
            raise UsageError("give the number or the subscriber whose personal data to export")
        sub = app.get_subscriber(subscriber)
        # A held erasure restricts the data: only a legal-hold read (GetNumberHistory) discloses it.
        data = None if sub.is_erased or sub.is_restricted else app.vault.open(sub.id, sub.personal_data)
        if data is not None:
            app.record_personal_data_reads([sub.id], "", purpose, "export_history")
        return {str(subscriber): data}
    finally:
        app.close()
        app.vault.store.close()


@one_line_errors("export_history")
def main(argv: list[str] | None = None) -> int:
    """Write the export file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_argument(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--number", help="export this number and the subscribers who held it")
    which.add_argument("--subscriber", help="export this subscriber (id)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSON-lines file to write")
    parser.add_argument("--include-personal-data", action="store_true", help="decrypt personal data (recorded)")
    parser.add_argument("--purpose", default="", help="why personal data is exported (required with it)")
    parser.add_argument(
        "--head-size", type=int, default=0, help="export as of the head signed at this size (default: the latest)"
    )
    args = parser.parse_args(argv)
    try:
        number = parse_msisdn(args.number) if args.number else None
        subscriber = UUID(args.subscriber) if args.subscriber else None
    except (InvalidValue, ValueError) as e:
        parser.error(str(e))
    probe = open_read_only(existing_store(args.db))
    try:
        probe.reader.head()  # a store that cannot be read or holds no ledger: one line, and no file
    finally:
        probe.close()
    personal = None
    if args.include_personal_data:
        if not args.purpose.strip():
            parser.error("--include-personal-data needs --purpose")
        personal = decrypt_personal_data(args.db, number, subscriber, args.purpose)
    partial = partial_name(args.output)
    try:
        with partial.open("wb") as out:
            count = export(args.db, out, number, subscriber, personal, args.head_size)
    except BaseException:
        partial.unlink(missing_ok=True)  # no part of a history is left behind as if it were one
        raise
    partial.replace(args.output)  # complete: only now under its own name
    print(f"exported {count} events to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
