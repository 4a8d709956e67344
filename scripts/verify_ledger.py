"""Verify the ledger's hash chains offline, straight from the database file (read-only, no keys needed).

    python -m scripts.verify_ledger --db sqlite:///ledger.db
    python -m scripts.verify_ledger --db sqlite:///ledger.db --number +8613800138000
    python -m scripts.verify_ledger --db sqlite:///ledger.db --up-to 120000 --expect-digest 9f2c...

With ``--up-to`` and ``--expect-digest`` it checks a digest published earlier: the chain up to that
position must recompute to exactly that value. Exits 0 when everything matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Iterator
from uuid import UUID

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, UUIDAsHex

from ledger.chain import CHAIN_TABLE, ChainedEvent, IntegrityReport, verify_chain, verify_streams
from ledger.cli import RunFailed, add_db_argument, existing_store, one_line_errors
from ledger.domain.identifiers import InvalidValue, parse_msisdn
from ledger.domain.number import Number

EVENTS_TABLE = "stored_events"
SELECT = (
    f"SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state, h.stream_hash, h.chain_hash "
    f"FROM {EVENTS_TABLE} e LEFT JOIN {CHAIN_TABLE} h ON h.position = e.rowid "
)


def _event(row: tuple) -> ChainedEvent:
    return ChainedEvent(
        int(row[0]),
        str(row[1]),
        int(row[2]),
        str(row[3]),
        bytes(row[4]),
        bytes(row[5]) if row[5] is not None else None,
        bytes(row[6]) if row[6] is not None else None,
    )


def all_events(conn: sqlite3.Connection, batch: int = 5000) -> Iterator[ChainedEvent]:
    """Every event in position order."""
    after = 0
    while True:
        rows = conn.execute(SELECT + "WHERE e.rowid > ? ORDER BY e.rowid LIMIT ?", (after, batch)).fetchall()
        if not rows:
            return
        yield from (_event(r) for r in rows)
        after = rows[-1][0]


def number_events(conn: sqlite3.Connection, number: str) -> list[ChainedEvent]:
    """The events of a number's stream and of every subscriber who held it."""
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    number_id = Number.create_id(number).hex
    rows = conn.execute(SELECT + "WHERE e.originator_id = ? ORDER BY e.rowid", (number_id,)).fetchall()
    holders: list[str] = []
    for row in rows:
        if row[3].endswith(":Number.Activated"):
            try:
                holder = transcoder.decode(bytes(row[4]))["subscriber_id"]
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
                continue  # a damaged event; the stream check reports it
            if isinstance(holder, UUID) and holder.hex not in holders:
                holders.append(holder.hex)
    ids = [number_id, *holders]
    marks = ",".join("?" * len(ids))
    rows = conn.execute(SELECT + f"WHERE e.originator_id IN ({marks}) ORDER BY e.rowid", ids).fetchall()
    return [_event(r) for r in rows]


def verify(db: str, number: str | None = None, up_to: int = 0) -> IntegrityReport:
    """Verify the store at ``db`` (an SQLite URL)."""
    path = existing_store(db).sqlite_path
    if path is None:
        raise RunFailed("verify_ledger reads an SQLite store; for PostgreSQL use VerifyIntegrity")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if number:
            return verify_streams(iter(number_events(conn, number)))
        return verify_chain(all_events(conn), up_to)
    finally:
        conn.close()


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
