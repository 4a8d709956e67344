"""Erasure inside the retention period (MIIT Order 25, PIPL art. 47): recorded, restricted, completed when
the period ends; told on the in-memory store."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from ledger.adapters.memory import MemoryKeyStore, memory_env
from ledger.application import LedgerApplication
from ledger.application.reads import LEGAL_HOLD_PREFIX, number_history
from ledger.config import Policy
from ledger.domain import errors
from ledger.keys.maintenance import KeyMaintenance, erase_due
from ledger.vault import MasterKey, PersonalDataVault
from tests.conftest import FakeClock
from tests.unit.test_application import NUMBER, activate, disconnect, topics, verified


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(clock: FakeClock):
    vault = PersonalDataVault(MasterKey(bytes(range(32))), MemoryKeyStore())
    app = LedgerApplication(env=memory_env(), vault=vault, policy=Policy(), clock=clock, group_commit=False)
    yield app
    app.close()


def served_and_ended(ledger: LedgerApplication, clock: FakeClock) -> UUID:
    ledger.provision_numbers(request_id="p", actor="ops", numbers=[NUMBER])
    sid = verified(ledger)
    activate(ledger, sid)
    clock.advance(days=100)
    disconnect(ledger)
    return sid


def erase(ledger: LedgerApplication, sid: UUID, request_id: str = "e-1"):
    return ledger.erase_subscriber_data(request_id=request_id, actor="dpo", subscriber_id=sid, legal_basis="PIPL 47")


def test_an_erasure_inside_the_retention_period_is_recorded_and_held(ledger, clock) -> None:
    sid = served_and_ended(ledger, clock)
    ended = clock.now()
    clock.advance(days=10)
    before = ledger.reader.max_position()
    result = erase(ledger, sid)
    # Counted from the end of the last tenure (the disconnection), not from the request.
    assert result.data == {"erasure_due_at": (ended + timedelta(days=730)).isoformat()}
    assert topics(ledger, before) == [
        "Subscriber.ErasureRequested",
        "IdentityHoldings.SubscriberErased",
        "RequestRecord.Recorded",
    ]
    subscriber = ledger.get_subscriber(sid)
    assert subscriber.is_restricted and not subscriber.is_erased and ledger.vault.has_key(sid)
    # Nothing but storage: no new verification, no new number.
    with pytest.raises(errors.SubscriberErased, match="restricted"):
        ledger.verify_identity(
            request_id="v-2", actor="shop", subscriber_id=sid, method="ID_CARD_READER", channel="retail",
            agent_id="agent-7", evidence_ref="scan",
        )  # fmt: skip
    # A repeated request answers the same due date and records no second request.
    again = erase(ledger, sid, "e-2")
    assert again.data == result.data
    assert "Subscriber.ErasureRequested" not in topics(ledger, result.position)


def test_held_data_is_disclosed_only_to_a_legal_hold_read_and_each_such_read_is_recorded(ledger, clock) -> None:
    sid = served_and_ended(ledger, clock)
    erase(ledger, sid)
    items = number_history(ledger, NUMBER, include_personal_data=True, actor="auditor", purpose="audit")
    registered = next(i for i in items if i.type_name == "SubscriberRegistered")
    assert registered.personal_state == "WITHHELD" and registered.personal_data is None
    assert not [i for i in items if i.type_name == "AccessLogPersonalDataRead"]
    items = number_history(ledger, NUMBER, True, actor="auditor", purpose="court order 12/2026", legal_hold=True)
    registered = next(i for i in items if i.type_name == "SubscriberRegistered")
    assert registered.personal_state == "DISCLOSED" and registered.personal_data["full_name"] == "Zhang San"
    reads = [i for i in number_history(ledger, NUMBER, False) if i.type_name == "AccessLogPersonalDataRead"]
    assert [r.event.purpose for r in reads] == [f"{LEGAL_HOLD_PREFIX}court order 12/2026"]


def test_erase_due_completes_held_erasures_when_the_period_ends_once(ledger, clock) -> None:
    sid = served_and_ended(ledger, clock)
    due = erase(ledger, sid).data["erasure_due_at"]
    clock.advance(days=729)
    assert erase_due(ledger, "erase_due").due == []  # not yet
    clock.advance(days=2)
    dry = erase_due(ledger, "erase_due", dry_run=True)
    assert dry.due == [sid] and dry.erased == 0 and ledger.vault.has_key(sid)
    before = ledger.reader.max_position()
    done = erase_due(ledger, "erase_due")
    assert done.erased == 1 and not ledger.vault.has_key(sid)
    assert topics(ledger, before) == ["Subscriber.PersonalDataErased", "RequestRecord.Recorded"]
    erased = [i for i in number_history(ledger, NUMBER, False) if i.type_name == "SubscriberPersonalDataErased"]
    assert erased[0].event.actor == "erase_due" and erased[0].event.occurred_at.isoformat() > due
    # Idempotent: a second pass, or the server's own, records nothing new.
    after = ledger.reader.max_position()
    assert erase_due(ledger, "erase_due").erased == 0
    assert KeyMaintenance(ledger, ledger.policy).round() is None
    assert ledger.reader.max_position() == after


def test_the_servers_daily_pass_completes_a_due_erasure(ledger, clock) -> None:
    sid = served_and_ended(ledger, clock)
    erase(ledger, sid)
    clock.advance(days=731)
    KeyMaintenance(ledger, ledger.policy).round()
    assert ledger.get_subscriber(sid).is_erased
    erased = [i for i in number_history(ledger, NUMBER, False) if i.type_name == "SubscriberPersonalDataErased"]
    assert erased[0].event.actor == "ledger-daily-erasure-pass"


def test_an_erasure_after_the_retention_period_destroys_the_key_at_once(ledger, clock) -> None:
    sid = served_and_ended(ledger, clock)
    clock.advance(days=731)
    result = erase(ledger, sid)
    assert "erasure_due_at" not in result.data
    assert ledger.get_subscriber(sid).is_erased and not ledger.vault.has_key(sid)
