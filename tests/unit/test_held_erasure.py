"""Erasure inside the retention period (MIIT Order 25, PIPL art. 47): recorded, restricted, completed when
the period ends; told on the in-memory store."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from ledger.adapters.memory import memory_env
from ledger.application import LedgerApplication
from ledger.application.commands import EraseSubscriberData, ProvisionNumbers, VerifyIdentity
from ledger.application.key_jobs import KeyMaintenance, erase_due
from ledger.application.pipeline import execute
from ledger.application.reads import LEGAL_HOLD_PREFIX, number_history
from ledger.domain import errors
from ledger.keys.crypto import MasterKey
from ledger.keys.rotation import end_epoch
from ledger.keys.stores import MemoryKeyStore
from ledger.keys.vault import PersonalDataVault
from ledger.policy import Policy
from tests.conftest import RESIDENT_ID, FakeClock
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
    execute(ledger, ProvisionNumbers(numbers=[NUMBER]), request_id="p", actor="ops")
    sid = verified(ledger)
    activate(ledger, sid)
    clock.advance(days=100)
    disconnect(ledger)
    return sid


def erase(ledger: LedgerApplication, sid: UUID, request_id: str = "e-1"):
    return execute(
        ledger, EraseSubscriberData(subscriber_id=sid, legal_basis="PIPL 47"), request_id=request_id, actor="dpo"
    )


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
        execute(
            ledger,
            VerifyIdentity(
                subscriber_id=sid, method="ID_CARD_READER", channel="retail", agent_id="agent-7", evidence_ref="scan"
            ),
            request_id="v-2",
            actor="shop",
        )
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


@pytest.fixture
def capped(clock: FakeClock):
    vault = PersonalDataVault(MasterKey(bytes(range(32))), MemoryKeyStore())
    policy = Policy(max_numbers_per_identity=2, identity_retention_days=0)
    app = LedgerApplication(env=memory_env(), vault=vault, policy=policy, clock=clock, group_commit=False)
    yield app
    app.close()


def test_the_cap_counts_across_a_persons_records_after_one_of_them_is_erased(capped) -> None:
    numbers = [NUMBER, "+8613800138001", "+8613800138002"]
    execute(capped, ProvisionNumbers(numbers=numbers), request_id="p", actor="ops")
    first = verified(capped, "r-1")
    second = verified(capped, "r-2")
    key = capped.get_subscriber(first).identity_key
    assert capped.get_subscriber(second).identity_key == key
    erase(capped, first)  # no number held: erased at once
    activate(capped, second, numbers[0], "a-1")
    activate(capped, second, numbers[1], "a-2")
    third = verified(capped, "r-3")
    assert capped.get_subscriber(third).identity_key == key  # the salt lives on with the live records
    with pytest.raises(errors.IdentityNumberCap):
        activate(capped, third, numbers[2], "a-3")


def test_the_identity_key_of_an_erased_person_cannot_be_recomputed(capped) -> None:
    sid = verified(capped, "r-1")
    key = capped.get_subscriber(sid).identity_key
    erase(capped, sid)
    end_epoch(capped.vault)
    store = capped.vault.store
    assert store._conn.execute("SELECT count(*) FROM identity_salts").fetchone()[0] == 0  # type: ignore[attr-defined]
    # The master-derived key of before would be recomputable; the salted one is not, and a new
    # registration of the same ID is not linked to the erased record.
    assert capped.vault.legacy_identity_key("RESIDENT_ID_CARD", RESIDENT_ID) != key
    again = verified(capped, "r-2")
    assert capped.get_subscriber(again).identity_key != key
