"""Verify the ledger's hash chains offline, straight from the database (read-only, no keys needed).

    python -m scripts.verify_ledger --db sqlite:///ledger.db
    python -m scripts.verify_ledger --db sqlite:///ledger.db --number +8613800138000
    python -m scripts.verify_ledger --db sqlite:///ledger.db --up-to 120000 --expect-digest 9f2c...
    python -m scripts.verify_ledger --db postgresql://auditor@db/ledger

With ``--up-to`` and ``--expect-digest`` it checks a digest published earlier: the chain up to that
position must recompute to exactly that value. Exits 0 when everything matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from ledger.adapters import open_read_only
from ledger.cli import add_db_argument, existing_store, one_line_errors
from ledger.domain.identifiers import InvalidValue, parse_msisdn
from ledger.domain.number import Number
from ledger.integrity import IntegrityReport, verify_chain, verify_streams


def verify(db: str, number: str | None = None, up_to: int = 0) -> IntegrityReport:
    """Verify the store at ``db`` (an SQLite or PostgreSQL URL), read-only: the whole ledger's chain, or
    one number's stream and the streams of every subscriber who held it."""
    log = open_read_only(existing_store(db))
    try:
        if number:
            number_id = Number.create_id(number)
            return verify_streams(iter(log.reader.chained_streams([number_id, *log.reader.holders_of(number_id)])))
        return verify_chain(log.reader.chained(), up_to)
    finally:
        log.close()


@one_line_errors("verify_ledger")
def main(argv: list[str] | None = None) -> int:
    """Print the verification result; 0 when intact (and matching the expected digest), else 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_db_argument(parser)
    parser.add_argument("--number", help="verify one number's stream and its holders' streams")
    parser.add_argument("--up-to", type=int, default=0, help="verify the global chain up to this position")
    parser.add_argument("--expect-digest", help="the digest published for --up-to (hex)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.expect_digest and not args.up_to:
        parser.error("--expect-digest needs --up-to (the position the digest was published at)")
    number = None
    if args.number:
        try:
            number = parse_msisdn(args.number)
        except InvalidValue as e:
            parser.error(str(e))
    report = verify(args.db, number, args.up_to)
    digest_ok = not args.expect_digest or (
        report.ok and report.head_position == args.up_to and report.head_digest == args.expect_digest.lower()
    )
    if args.json:
        print(orjson.dumps({**report.__dict__, "expected_digest_matches": digest_ok}).decode())
    elif report.ok:
        print(
            f"ok: {report.events_checked} events verified; head digest {report.head_digest} "
            f"at position {report.head_position}"
        )
    else:
        print(
            f"TAMPERED: first bad position {report.first_bad_position}: {report.problem} "
            f"({report.events_checked} events verified before it)"
        )
    if args.expect_digest and not digest_ok:
        print(
            f"DIGEST MISMATCH: expected {args.expect_digest} at position {args.up_to}, "
            f"recomputed {report.head_digest} at position {report.head_position}"
        )
    return 0 if report.ok and digest_ok else 1


if __name__ == "__main__":
    sys.exit(main())
