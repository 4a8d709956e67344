"""Verify the ledger's hash chains offline, straight from the database (read-only, no keys needed).

    python -m scripts.verify_ledger --db sqlite:///ledger.db
    python -m scripts.verify_ledger --db sqlite:///ledger.db --number +8613800138000
    python -m scripts.verify_ledger --db sqlite:///ledger.db --up-to 120000 --expect-digest 9f2c...
    python -m scripts.verify_ledger --db postgresql://auditor@db/ledger --public-key ledger.head.pub
    python -m scripts.verify_ledger --db sqlite:///ledger.db --master-key-file ledger.master.key

With ``--up-to`` and ``--expect-digest`` it checks a digest published earlier: the chain up to that
position must recompute to exactly that value. The log is also checked against its Merkle tree and every
signed head (their signatures too with ``--public-key``), and every registration must have its data
key or a tombstone in the key store (only which rows exist is read); ``--number`` proves the number's
history complete as of the latest signed head. With the master key (``--master-key-file`` or
``LEDGER_MASTER_KEY``) every batch's MAC is checked too: an event no ledger server wrote is found at its
position. Exits 0 when everything matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ledger.adapters import open_read_only
from ledger.application.verification import keyless_registrations, with_keyless
from ledger.cli import add_db_argument, existing_store, one_line_errors
from ledger.domain.access import AccessLog
from ledger.domain.identifiers import InvalidValue, parse_msisdn
from ledger.domain.number import Number
from ledger.integrity import IntegrityReport, verify_chain, verify_streams
from ledger.keys.crypto import KeyStoreError, MasterKey
from ledger.keys.stores import MemoryKeyStore, PostgresKeyStore, SQLiteKeyStore
from ledger.proofs.batches import BatchKey
from ledger.proofs.heads import load_public_key
from ledger.proofs.verify import check_batches, check_ledger, check_streams

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ledger.config import StoreConfig
    from ledger.keys.tables import KeyTables


def verify(
    db: str,
    number: str | None = None,
    up_to: int = 0,
    public: Ed25519PublicKey | None = None,
    key: BatchKey | None = None,
) -> IntegrityReport:
    """Verify the store at ``db`` (an SQLite or PostgreSQL URL), read-only: the whole ledger's chain, tree
    and signed heads, or one number's streams (with its holders' and their access logs) proven complete as
    of the latest signed head. With ``public``, every head's signature is checked too; with ``key``, every
    batch's MAC."""
    log = open_read_only(existing_store(db))
    try:
        reader = log.reader
        if number:
            number_id = Number.create_id(number)
            holders = reader.holders_of(number_id)
            streams = [number_id, *holders, *(AccessLog.create_id(h) for h in holders)]
            events = reader.chained_streams(streams)
            chain = report = verify_streams(iter(events))
            if report.ok:
                report = check_streams(report, log.proofs, reader, streams, events, public)
            return check_batches(report, key, log.proofs, reader, events=events) if chain.ok else report
        chain = report = verify_chain(reader.chained(), up_to)
        if report.ok:
            report = check_ledger(report, log.proofs, reader, public, up_to)
        report = check_batches(report, key, log.proofs, reader, up_to=up_to) if chain.ok else report
        if up_to:
            return report
        keys = _key_tables(existing_store(db))
        try:
            return with_keyless(report, keyless_registrations(reader, keys))
        finally:
            keys.close()
    finally:
        log.close()


def _key_tables(store: StoreConfig) -> KeyTables:
    """The ledger's key store, read-only (only which keys and tombstones exist is read; none is opened)."""
    if store.kind == "postgres":
        return PostgresKeyStore(store.conninfo(), read_only=True)
    path = store.key_store_path()
    # A ledger whose key store file is gone has lost every key: an empty store says so.
    return SQLiteKeyStore(str(path), read_only=True) if path.is_file() else MemoryKeyStore()


@one_line_errors("verify_ledger")
def main(argv: list[str] | None = None) -> int:
    """Print the verification result; 0 when intact (and matching the expected digest), else 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_argument(parser)
    parser.add_argument("--number", help="verify one number's stream and its holders' streams")
    parser.add_argument("--up-to", type=int, default=0, help="verify the global chain up to this position")
    parser.add_argument("--expect-digest", help="the digest published for --up-to (hex)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--public-key", type=Path, help="the operator's head-signing public key (PEM): check every signed head"
    )
    parser.add_argument(
        "--master-key-file",
        type=Path,
        help="the operator's master key (or LEDGER_MASTER_KEY): check every batch's MAC (events no server wrote)",
    )
    args = parser.parse_args(argv)
    key = None
    text = args.master_key_file.read_text() if args.master_key_file else os.environ.get("LEDGER_MASTER_KEY", "")
    if text:
        try:
            key = BatchKey.from_master(MasterKey.from_text(text))
        except KeyStoreError as e:
            parser.error(f"master key: {e}")
    public = None
    if args.public_key:
        try:
            public = load_public_key(args.public_key.read_bytes())
        except ValueError as e:
            parser.error(f"--public-key: {e}")
    if args.expect_digest and not args.up_to:
        parser.error("--expect-digest needs --up-to (the position the digest was published at)")
    number = None
    if args.number:
        try:
            number = parse_msisdn(args.number)
        except InvalidValue as e:
            parser.error(str(e))
    report = verify(args.db, number, args.up_to, public, key)
    digest_ok = not args.expect_digest or (
        report.ok and report.head_position == args.up_to and report.head_digest == args.expect_digest.lower()
    )
    if key is None and not args.json:
        print("note: no master key given, so batch MACs were not checked (events no server wrote may pass)")
    if args.json:
        print(orjson.dumps({**report.__dict__, "expected_digest_matches": digest_ok}).decode())
    elif report.ok:
        print(
            f"ok: {report.events_checked} events verified; head digest {report.head_digest} "
            f"at position {report.head_position}"
        )
    else:
        where = f"first bad position {report.first_bad_position}" if report.first_bad_position else "ledger"
        stream = f" (stream {report.stream})" if report.stream else ""
        print(f"TAMPERED: {where}{stream}: {report.problem} ({report.events_checked} events verified before it)")
    for position, sid in report.keyless_registrations:
        print(f"KEY LOST: the registration at position {position} (subscriber {sid}) has no data key and no tombstone")
    if args.expect_digest and not digest_ok:
        print(
            f"DIGEST MISMATCH: expected {args.expect_digest} at position {args.up_to}, "
            f"recomputed {report.head_digest} at position {report.head_position}"
        )
    return 0 if report.ok and digest_ok else 1


if __name__ == "__main__":
    sys.exit(main())
