"""The compliance report's lists say what needs doing: a ported-out tenure's pending clearance is among the
numbers held back by clearance (no release will ever ask for it), and a subscriber whose erasure was
requested and is held by the retention period is listed as held, not as due for erasure."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from ledger.policy import Policy
from ledger.v1 import lifecycle_service_pb2 as lpb
from projections import reports
from projections.db import ViewsDatabase
from scripts import compliance_report
from tests.conftest import number, running_server


def test_a_ported_out_tenure_with_clearance_pending_is_among_the_blockers(server, settings) -> None:
    stubs, app = server
    _, ported_tenure, _ = stubs.onboard(number(1), seq=1)
    stubs.onboard(number(2), seq=2)
    stubs.lifecycle.PortOutNumber(
        lpb.PortOutNumberRequest(request_id=stubs.rid(), number=number(1), recipient_operator="other-op")
    )
    stubs.lifecycle.ConfirmDataCleared(
        lpb.ConfirmDataClearedRequest(
            request_id=stubs.rid(), number=number(1), tenure_id=ported_tenure, holder="crm", evidence_ref="x"
        )
    )
    stubs.lifecycle.DisconnectNumber(lpb.DisconnectNumberRequest(request_id=stubs.rid(), number=number(2), reason=1))
    assert stubs.projector.wait_for(app.reader.max_position(), 20)
    conn = ViewsDatabase.for_store(settings.store).connect()
    try:
        blocked, holders = reports.quarantine_blockers(conn, datetime.now(UTC))
    finally:
        conn.close()
    by_number = {b["number"]: b for b in blocked}
    assert set(by_number) == {number(1), number(2)}
    assert by_number[number(1)]["state"] == "PORTED_OUT" and by_number[number(1)]["quarantine_until"] is None
    assert by_number[number(1)]["waiting_on"] == ["billing", "voicemail"]
    assert by_number[number(2)]["state"] == "QUARANTINED"
    assert holders["crm"]["numbers"] == 1 and holders["billing"]["numbers"] == 2


def test_held_erasures_are_listed_apart_from_erasures_due(settings, clock, tmp_path: Path) -> None:
    policy = Policy(identity_retention_days=730, erasure_retention_days=0)
    held_settings = dataclasses.replace(settings, policy=policy)
    servers = running_server(held_settings, clock)
    stubs, app = next(servers)
    try:
        held, _, _ = stubs.onboard(number(1), seq=1)
        due, _, _ = stubs.onboard(number(2), seq=2)
        for n in (1, 2):
            stubs.lifecycle.DisconnectNumber(
                lpb.DisconnectNumberRequest(request_id=stubs.rid(), number=number(n), reason=1)
            )
        response = stubs.lifecycle.EraseSubscriberData(
            lpb.EraseSubscriberDataRequest(request_id=stubs.rid(), subscriber_id=held, legal_basis="PIPL art. 47")
        )
        assert response.HasField("erasure_due_at")  # held: the retention period has not ended
        assert stubs.projector.wait_for(app.reader.max_position(), 20)
        conn = ViewsDatabase.for_store(settings.store).connect()
        try:
            now = datetime.now(UTC)
            assert [e["subscriber_id"] for e in reports.erasures_due(conn, now, 0)] == [due.replace("-", "")]
            assert reports.erasures_due_count(conn, now, 0) == 1
            (listed,) = reports.erasures_held(conn)
            assert listed["subscriber_id"] == held.replace("-", "")
            assert listed["held_until"] == response.erasure_due_at.ToDatetime(tzinfo=UTC)
        finally:
            conn.close()
        out = tmp_path / "report.html"
        db = f"sqlite:///{settings.store.sqlite_path}"
        assert compliance_report.main(["--db", db, "-o", str(out), "--policy", str(_policy_file(tmp_path))]) == 0
        text = out.read_text()
        assert "<h2>Subscribers due for erasure (1)</h2>" in text
        assert "<h2>Erasures requested and held by the retention period (1)</h2>" in text
    finally:
        next(servers, None)


def _policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text("identity_retention_days = 730\nerasure_retention_days = 0\n")
    return path
