"""Tamper evidence: changed, deleted and swapped stored events are found at their position, over gRPC
and offline by scripts/verify_ledger; published digests can be checked later."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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


def test_an_export_verifies_and_a_modified_one_does_not(server, settings, tmp_path, capsys) -> None:
    import base64

    import orjson

    from scripts import export_history, verify_export

    stubs, app = server
    build_history(stubs)
    sid = list(stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=number(1))))[1].event.subscriber_id
    stubs.lifecycle.DisconnectNumber(lpb.DisconnectNumberRequest(request_id="d", number=number(1), reason=1))
    stubs.lifecycle.EraseSubscriberData(
        lpb.EraseSubscriberDataRequest(request_id="e", subscriber_id=sid, legal_basis="PIPL")
    )
    db = f"sqlite:///{settings.store.sqlite_path}"
    out = tmp_path / "export.jsonl"
    assert export_history.main(["--db", db, "--number", number(1), "-o", str(out)]) == 0
    lines = out.read_bytes().splitlines()
    header = orjson.loads(lines[0])
    assert header["ledger_head_position"] == app.reader.max_position()
    events = [orjson.loads(line) for line in lines[1:-1]]
    assert {e["data"].get("number") for e in events if e["topic"].endswith("Provisioned")} == {number(1)}
    assert any(e["topic"].endswith("PersonalDataErased") for e in events)
    assert b"Subscriber 1" not in out.read_bytes()  # personal data stays encrypted
    assert verify_export.main([str(out)]) == 0
    some = events[3]
    assert verify_export.main([str(out), "--expect-digest", f"{some['position']}:{some['chain_hash']}"]) == 0
    assert verify_export.main([str(out), "--expect-digest", f"{some['position']}:{'0' * 64}"]) == 1

    def altered(index: int, change) -> Path:
        records = [orjson.loads(line) for line in lines]
        change(records[index])
        path = tmp_path / f"bad-{index}.jsonl"
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
        return path

    def flip_state(r: dict) -> None:
        raw = bytearray(base64.b64decode(r["state"]))
        raw[len(raw) // 2] ^= 0x01
        r["state"] = base64.b64encode(bytes(raw)).decode()

    capsys.readouterr()
    assert verify_export.main([str(altered(4, flip_state))]) == 1
    assert "line 5" in capsys.readouterr().out
    assert verify_export.main([str(altered(4, lambda r: r["data"].update(channel="elsewhere")))]) == 1
    assert "readable fields differ" in capsys.readouterr().out
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_bytes(b"\n".join(lines[:3] + lines[4:]) + b"\n")
    assert verify_export.main([str(dropped)]) == 1
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_bytes(b"\n".join(lines[:-1]) + b"\n")
    assert verify_export.main([str(truncated)]) == 1
