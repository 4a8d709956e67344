"""Tamper evidence: changed, deleted and swapped stored events are found at their position, over gRPC
and offline by scripts/verify_ledger; published digests can be checked later."""

from __future__ import annotations

import sqlite3

import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import verify_ledger
from tests.conftest import number


def build_history(stubs) -> None:
    for i in range(3):
        msisdn = number(i)
        stubs.onboard(msisdn, seq=i)
        stubs.lifecycle.SuspendNumber(lpb.SuspendNumberRequest(request_id=f"s{i}", number=msisdn, reason=2))
    stubs.lifecycle.ResumeNumber(lpb.ResumeNumberRequest(request_id="r0", number=number(0)))


def verify(stubs, msisdn: str = "", up_to: int = 0) -> hpb.VerifyIntegrityResponse:
    return stubs.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(number=msisdn, up_to_position=up_to))


def positions_of(db: str, topic_suffix: str) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [
            r[0]
            for r in conn.execute("SELECT rowid, topic FROM stored_events ORDER BY rowid")
            if r[1].endswith(topic_suffix)
        ]
    finally:
        conn.close()


def tamper(db: str, kind: str, a: int, b: int) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        if kind == "change":
            conn.execute(
                "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), 'retail', 'retaiL') AS BLOB) "
                "WHERE rowid = ?",
                (a,),
            )
            assert conn.total_changes == 1
        elif kind == "delete":
            conn.execute("DELETE FROM stored_events WHERE rowid = ?", (a,))
        elif kind == "swap":
            ra = conn.execute(
                "SELECT originator_id, originator_version, topic, state FROM stored_events WHERE rowid=?", (a,)
            ).fetchone()
            rb = conn.execute(
                "SELECT originator_id, originator_version, topic, state FROM stored_events WHERE rowid=?", (b,)
            ).fetchone()
            conn.execute("BEGIN")
            conn.execute("UPDATE stored_events SET originator_id='tmp' WHERE rowid=?", (a,))
            conn.execute(
                "UPDATE stored_events SET originator_id=?, originator_version=?, topic=?, state=? WHERE rowid=?",
                (*ra, b),
            )
            conn.execute(
                "UPDATE stored_events SET originator_id=?, originator_version=?, topic=?, state=? WHERE rowid=?",
                (*rb, a),
            )
            conn.execute("COMMIT")
    finally:
        conn.close()


def test_an_untouched_ledger_verifies_and_published_digests_hold(server, settings) -> None:
    stubs, app = server
    build_history(stubs)
    whole = verify(stubs)
    head = app.reader.max_position()
    assert whole.ok and whole.events_checked == head and whole.head_position == head and whole.first_bad_position == 0
    assert len(whole.head_digest) == 64
    one = verify(stubs, number(0))
    assert one.ok and one.events_checked > 5
    # Publish the digest now; the ledger grows; the published digest still verifies at its position.
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="later", numbers=[number(50)]))
    db = f"sqlite:///{settings.store.sqlite_path}"
    assert verify_ledger.main(["--db", db, "--up-to", str(head), "--expect-digest", whole.head_digest]) == 0
    assert verify(stubs, up_to=head).head_digest == whole.head_digest
    assert verify(stubs).head_digest != whole.head_digest
    assert verify_ledger.main(["--db", db, "--up-to", str(head), "--expect-digest", "00" * 32]) == 1
    assert verify_ledger.main(["--db", db, "--number", number(1)]) == 0


@pytest.mark.parametrize("kind", ["change", "delete", "swap"])
def test_tampering_is_found_at_its_position(server, settings, kind, capsys) -> None:
    stubs, _app = server
    build_history(stubs)
    path = str(settings.store.sqlite_path)
    published = verify(stubs)
    activations = positions_of(path, ":Number.Activated")
    suspensions = positions_of(path, ":Number.Suspended")
    a, b = activations[1], suspensions[0]
    tamper(path, kind, a, b)
    expected = min(a, b) if kind == "swap" else a

    report = verify(stubs)
    assert not report.ok and report.first_bad_position == expected, report.problem
    assert report.events_checked == expected - 1
    assert verify_ledger.main(["--db", f"sqlite:///{path}"]) == 1
    assert f"first bad position {expected}" in capsys.readouterr().out
    # The published digest no longer recomputes.
    assert (
        verify_ledger.main(
            [
                "--db",
                f"sqlite:///{path}",
                "--up-to",
                str(published.head_position),
                "--expect-digest",
                published.head_digest,
            ]
        )
        == 1
    )
    if kind == "change":
        assert not verify(stubs, number(1)).ok
        assert verify(stubs, number(2)).ok  # other numbers still verify on their own
        assert verify_ledger.main(["--db", f"sqlite:///{path}", "--number", number(1)]) == 1
