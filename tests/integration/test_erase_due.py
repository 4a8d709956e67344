"""A held erasure completed from the command line (``scripts.erase_due --db``) on a SQLite file and on
PostgreSQL: the request answers when it is due, the data is withheld from every read but a legal hold
(which is recorded), a dry run erases nothing, the run erases it once and a re-run records nothing. The
rule on the in-memory store is tests/unit/test_held_erasure.py."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from ledger.application.commands import DisconnectNumber, EraseSubscriberData
from ledger.application.pipeline import execute
from ledger.application.reads import number_history
from ledger.bootstrap import open_ledger
from ledger.config import Settings
from ledger.policy import Policy
from scripts import erase_due
from tests.conftest import TEST_MASTER_KEY, FakeClock, number, onboard_app
from tests.integration.test_offline_tools import url_of

STORES = ("sqlite", "postgres")
MSISDN = number(71)


def test_erase_due_completes_a_held_erasure_once(
    settings: Settings, store_kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Moved from tests/e2e/test_erasure_holds_and_epochs.py (test_a_held_erasure_answers_its_due_time_...)."""
    # Held 400 days ago for 300 days: due by the machine's clock, which erase_due reads.
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=400))
    settings = dataclasses.replace(settings, policy=Policy(identity_retention_days=300))
    monkeypatch.setenv("LEDGER_MASTER_KEY", TEST_MASTER_KEY if store_kind == "postgres" else "")
    url = url_of(settings.store)
    app = open_ledger(settings, clock)
    try:
        sid = onboard_app(app, MSISDN, 71)
        execute(app, DisconnectNumber(number=MSISDN, reason="SUBSCRIBER_REQUEST"), request_id="d", actor="t")
        ended = clock.now()
        clock.advance(days=3)
        erasure = EraseSubscriberData(subscriber_id=sid, legal_basis="PIPL art. 47")
        answered = execute(app, erasure, request_id="e", actor="dpo")
        assert answered.data["erasure_due_at"] == (ended + timedelta(days=300)).isoformat()

        def read(legal_hold: bool = False) -> list:
            return number_history(app, MSISDN, True, "auditor", "court order 7", legal_hold=legal_hold)

        def registered(legal_hold: bool = False) -> str:
            return next(str(i.personal_state) for i in read(legal_hold) if i.type_name == "SubscriberRegistered")

        assert registered() == "WITHHELD"
        assert not [i for i in read() if i.type_name == "AccessLogPersonalDataRead"]
        assert registered(legal_hold=True) == "DISCLOSED"  # for the legal hold only
        reads = [i for i in read() if i.type_name == "AccessLogPersonalDataRead"]
        assert len(reads) == 1 and reads[0].data()["purpose"] == "legal hold: court order 7"

        assert erase_due.main(["--db", url, "--dry-run", "--no-progress"]) == 0
        assert f"due {sid}" in capsys.readouterr().out
        assert registered(legal_hold=True) == "DISCLOSED"  # a dry run erases nothing

        assert erase_due.main(["--db", url, "--no-progress"]) == 0
        out = capsys.readouterr()
        assert f"erased {sid}" in out.out and "1 erased" in out.err
        assert registered(legal_hold=True) == "ERASED"
        erased = [i.event.actor for i in read() if i.type_name == "SubscriberPersonalDataErased"]
        assert erased == ["erase_due"]

        assert erase_due.main(["--db", url, "--no-progress"]) == 0
        assert "0 erased" in capsys.readouterr().err
        assert len([i for i in read() if i.type_name == "SubscriberPersonalDataErased"]) == 1
    finally:
        app.close()
        app.vault.store.close()
