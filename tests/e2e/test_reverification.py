"""reverification against a live server: a dry run records nothing; before the deadline nothing is
suspended; after it, those still due are suspended with reason UNVERIFIED_IDENTITY; a holder re-verified
before the run (even when the read models have not seen it) is left alone; a re-run records nothing new;
and the compliance report shows the campaign by channel and sales point."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import compliance_report, reverification
from tests.conftest import number

TODAY = datetime.now(UTC).date()
PASSED, COMING = (TODAY - timedelta(days=1)).isoformat(), (TODAY + timedelta(days=1)).isoformat()


def reverify(stubs, subscriber_id: str, method: int = ledger_pb2.VERIFICATION_METHOD_PASSPORT_CHECK) -> None:
    stubs.lifecycle.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id=stubs.rid(),
            subscriber_id=subscriber_id,
            method=method,
            channel="retail",
            agent_id="a2",
            evidence_ref="again",
        )
    )


def rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {r["number"]: r for r in csv.DictReader(f)}


@pytest.mark.timeout(180)
def test_a_campaign_from_dry_run_to_suspension_and_a_rerun(
    server, settings, clock, tmp_path: Path, capsys, monkeypatch
) -> None:
    stubs, app = server
    holders = {i: stubs.onboard(number(i), seq=i)[0] for i in range(1, 6)}  # ID_CARD_READER on 2026-01-05
    stubs.lifecycle.SuspendNumber(  # not ACTIVE: never found
        lpb.SuspendNumberRequest(request_id=stubs.rid(), number=number(5), reason=ledger_pb2.SUSPENSION_REASON_FRAUD)
    )
    clock.advance(days=60)
    db = f"sqlite:///{settings.store.sqlite_path}"
    campaign = ["--campaign", "spring-thunder", "--verified-before", "2026-02-01", "--db", db]
    campaign += ["--target", stubs.target, "--no-progress"]
    out = tmp_path / "campaign.csv"

    def run(*extra: str) -> dict[str, dict[str, str]]:
        assert stubs.projector.wait_for(app.reader.max_position(), 20)
        assert reverification.main([*campaign, "-o", str(out), *extra]) == 0
        return rows(out)

    # A dry run after the deadline says what it would do and records nothing.
    before = app.reader.max_position()
    found = run("--deadline", PASSED, "--suspend-overdue", "--dry-run")
    assert sorted(found) == [number(i) for i in range(1, 5)]
    assert {r["action"] for r in found.values()} == {"would suspend"}
    assert found[number(1)]["reason"] == "verified before 2026-02-01"
    assert found[number(1)]["method"] == "ID_CARD_READER" and found[number(1)]["channel"] == "retail"
    assert app.reader.max_position() == before

    # Re-verified before the deadline: no longer found.
    reverify(stubs, holders[2])
    found = run("--deadline", COMING, "--suspend-overdue")
    assert sorted(found) == [number(1), number(3), number(4)]
    assert {r["action"] for r in found.values()} == {"due"}
    assert "has not passed: nothing suspended" in capsys.readouterr().out
    after_notice = app.reader.max_position()

    # Re-verified after the views were read but before the suspension: left alone (read from the ledger).
    assert stubs.projector.wait_for(after_notice, 20)
    read_models = reverification.ReadModels(reverification.ViewsDatabase.for_store(settings.store))
    tenures = reverification.PeopleQueries(read_models).open_tenures()
    read_models.close()
    reverify(stubs, holders[4])
    with monkeypatch.context() as m:
        m.setattr(reverification.PeopleQueries, "open_tenures", lambda self: tenures)  # the views as they were read
        assert reverification.main([*campaign, "-o", str(out), "--deadline", PASSED, "--suspend-overdue"]) == 0
    done = rows(out)
    assert done[number(1)]["action"] == done[number(3)]["action"] == "suspended"
    assert done[number(4)]["action"] == "re-verified (left alone)"
    for i, status in ((1, "SUSPENDED"), (3, "SUSPENDED"), (4, "ACTIVE"), (2, "ACTIVE")):
        state = stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=number(i))).number_state
        assert ledger_pb2.NumberStatus.Name(state.state) == f"NUMBER_STATUS_{status}", i
    state = stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=number(1))).number_state
    assert state.suspension_reason == ledger_pb2.SUSPENSION_REASON_UNVERIFIED_IDENTITY

    # A re-run records nothing new and lists what the campaign did.
    suspended = app.reader.max_position()
    again = run("--deadline", PASSED, "--suspend-overdue")
    assert app.reader.max_position() == suspended
    assert {n: r["action"] for n, r in again.items()} == {
        number(1): "suspended earlier",
        number(3): "suspended earlier",
    }

    # Re-verified after the deadline, while suspended: the campaign does not resume it, the report shows it.
    clock.advance(days=1)
    reverify(stubs, holders[3])
    assert stubs.projector.wait_for(app.reader.max_position(), 20)
    report = tmp_path / "report.html"
    args = ["--db", db, "-o", str(report), "--campaign", "spring-thunder", "--verified-before", "2026-02-01"]
    assert compliance_report.main(args) == 0
    text = report.read_text()
    assert (
        "Campaign spring-thunder by channel and sales point: 4 found, 3 re-verified, 2 suspended, 0 still due" in text
    )
    assert "<td>spring-thunder</td><td>2</td><td>2</td><td>1</td>" in text


def test_a_method_no_longer_accepted_is_due(server, settings, clock, tmp_path: Path) -> None:
    stubs, app = server
    sid, _, _ = stubs.onboard(number(1), seq=1)  # ID_CARD_READER
    stubs.onboard(number(2), seq=2)
    reverify(stubs, sid, ledger_pb2.VERIFICATION_METHOD_ONLINE_PHOTO_LIVENESS)
    assert stubs.projector.wait_for(app.reader.max_position(), 20)
    out = tmp_path / "c.csv"
    db = f"sqlite:///{settings.store.sqlite_path}"
    args = ["--campaign", "c2", "--methods", "ID_CARD_READER,passport_check", "--deadline", COMING]
    assert reverification.main([*args, "--db", db, "--target", stubs.target, "-o", str(out), "--no-progress"]) == 0
    found = rows(out)
    assert list(found) == [number(1)]
    assert found[number(1)]["reason"] == "method ONLINE_PHOTO_LIVENESS not accepted"
