"""Number portability on the in-memory adapter: a port ends a tenure without a change of holder, a
ported-out number is never released here, a returned one is quarantined from the recipient's
disconnection, and another operator's number enters by port-in."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from ledger.adapters.memory import memory_env
from ledger.application import LedgerApplication
from ledger.domain import errors
from ledger.domain.number import Number
from ledger.jurisdictions import Jurisdiction
from ledger.keys.crypto import MasterKey
from ledger.keys.stores import MemoryKeyStore
from ledger.keys.vault import PersonalDataVault
from ledger.policy import Policy
from tests.conftest import FakeClock, onboard_app

NUMBER = "+8613800138000"
US_NUMBER = "+12015550123"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(clock: FakeClock):
    vault = PersonalDataVault(MasterKey(bytes(range(32))), MemoryKeyStore())
    policy = Policy(quarantine_days=90, jurisdictions=(Jurisdiction("+1", quarantine_days=45),))
    app = LedgerApplication(env=memory_env(), vault=vault, policy=policy, clock=clock, group_commit=False)
    yield app
    app.close()


def port_out(app: LedgerApplication, number: str = NUMBER, rid: str = "po") -> str:
    result = app.port_out_number(request_id=rid, actor="t", number=number, recipient_operator="other-mno")
    return str(result.data["tenure_id"])


def test_port_out_ends_the_tenure_as_a_port_without_quarantine(ledger, clock) -> None:
    sid = onboard_app(ledger, NUMBER, 1)
    clock.advance(days=30)
    tenure_id = port_out(ledger)
    num = ledger.get_number(NUMBER)
    assert num.status == "PORTED_OUT" and num.ported_out_at == clock.now()
    tenure = num.tenure(UUID(tenure_id))
    assert tenure.ported_to == "other-mno" and tenure.disconnected_at == clock.now()
    assert tenure.quarantine_until is None  # not quarantined: the number is served elsewhere
    assert tenure.subscriber_id == sid
    assert tenure.outstanding_holders == ["crm", "billing", "voicemail"]  # clearance still opens


def test_ported_out_number_is_never_released_or_reactivated_here(ledger, clock) -> None:
    onboard_app(ledger, NUMBER, 1)
    port_out(ledger)
    clock.advance(days=400)
    with pytest.raises(errors.NumberPortedOut) as refused:
        ledger.release_number(request_id="rel", actor="t", number=NUMBER, override_reason="")
    assert refused.value.reason == "NUMBER_PORTED_OUT"
    with pytest.raises(errors.NumberPortedOut):
        ledger.release_number(request_id="rel2", actor="t", number=NUMBER, override_reason="ops said so")
    with pytest.raises(errors.NumberNotInService):
        ledger.disconnect_number(request_id="d", actor="t", number=NUMBER, reason="SUBSCRIBER_REQUEST")


def test_clearance_of_the_ported_tenure_is_confirmed_as_usual(ledger, clock) -> None:
    onboard_app(ledger, NUMBER, 1)
    tenure_id = UUID(port_out(ledger))
    for holder in ("crm", "billing", "voicemail"):
        ledger.confirm_data_cleared(
            request_id=f"c-{holder}", actor="t", number=NUMBER, tenure_id=tenure_id, holder=holder, evidence_ref="e"
        )
    assert ledger.get_number(NUMBER).tenure(tenure_id).clearance == "CLEARED"


def test_the_former_holder_may_be_erased_after_a_port_out(ledger) -> None:
    sid = onboard_app(ledger, NUMBER, 1)
    with pytest.raises(errors.SubscriberHasOpenTenure):
        ledger.erase_subscriber_data(request_id="e0", actor="t", subscriber_id=sid, legal_basis="PIPL art. 47")
    port_out(ledger)
    ledger.erase_subscriber_data(request_id="e1", actor="t", subscriber_id=sid, legal_basis="PIPL art. 47")


def test_disconnect_with_reason_ported_out_is_refused_naming_port_out(ledger) -> None:
    onboard_app(ledger, NUMBER, 1)
    with pytest.raises(errors.InvalidArgument) as refused:
        ledger.disconnect_number(request_id="d", actor="t", number=NUMBER, reason="PORTED_OUT")
    assert refused.value.violations == [("reason", "a port-out is recorded with PortOutNumber, not DisconnectNumber")]
    assert ledger.get_number(NUMBER).status == "ACTIVE"


def test_returned_number_is_quarantined_from_the_recipients_disconnection_then_released(ledger, clock) -> None:
    onboard_app(ledger, NUMBER, 1)
    tenure_id = UUID(port_out(ledger))
    ported_at = clock.now()
    clock.advance(days=200)
    disconnected = ported_at + timedelta(days=150)
    result = ledger.return_number(request_id="ret", actor="t", number=NUMBER, disconnected_at=disconnected)
    until = disconnected + timedelta(days=90)
    assert result.data["quarantine_until"] == until.isoformat()
    num = ledger.get_number(NUMBER)
    assert num.status == "QUARANTINED" and num.ported_out_at is None
    assert num.tenure(tenure_id).recipient_disconnected_at == disconnected
    with pytest.raises(errors.QuarantineNotElapsed):
        ledger.release_number(request_id="rel-1", actor="t", number=NUMBER, override_reason="")
    clock.t = until
    with pytest.raises(errors.ClearancePending):
        ledger.release_number(request_id="rel-2", actor="t", number=NUMBER, override_reason="")
    for holder in ("crm", "billing", "voicemail"):
        ledger.confirm_data_cleared(
            request_id=f"c-{holder}", actor="t", number=NUMBER, tenure_id=tenure_id, holder=holder, evidence_ref="e"
        )
    ledger.release_number(request_id="rel-3", actor="t", number=NUMBER, override_reason="")
    assert ledger.get_number(NUMBER).status == "AVAILABLE"


def test_return_is_refused_for_a_number_served_here_or_with_dates_out_of_order(ledger, clock) -> None:
    onboard_app(ledger, NUMBER, 1)
    with pytest.raises(errors.NumberNotPortedOut) as refused:
        ledger.return_number(request_id="x", actor="t", number=NUMBER, disconnected_at=clock.now())
    assert refused.value.reason == "NUMBER_NOT_PORTED_OUT"
    clock.advance(days=1)
    port_out(ledger)
    clock.advance(days=1)
    before = clock.now() - timedelta(days=2)
    with pytest.raises(errors.InvalidArgument) as early:
        ledger.return_number(request_id="y", actor="t", number=NUMBER, disconnected_at=before)
    assert early.value.violations[0][0] == "disconnected_at"
    with pytest.raises(errors.InvalidArgument) as late:
        ledger.return_number(request_id="z", actor="t", number=NUMBER, disconnected_at=clock.now() + timedelta(hours=1))
    assert late.value.violations[0][0] == "disconnected_at"


def test_quarantine_of_a_return_follows_the_numbers_jurisdiction(ledger, clock) -> None:
    onboard_app(ledger, US_NUMBER, 1)
    port_out(ledger, US_NUMBER)
    clock.advance(days=10)
    result = ledger.return_number(request_id="ret", actor="t", number=US_NUMBER, disconnected_at=clock.now())
    assert result.data["quarantine_until"] == (clock.now() + timedelta(days=45)).isoformat()


def test_port_in_of_another_operators_number_starts_its_records(ledger, clock) -> None:
    ledger.port_in_number(request_id="pi", actor="t", number=NUMBER, donor_operator="donor-mno")
    num = ledger.get_number(NUMBER)
    assert num.status == "AVAILABLE" and num.provisioned_at == clock.now() and num.ported_in_from == "donor-mno"
    events = [type(e).__name__ for e in ledger.repository.event_store.get(Number.create_id(NUMBER))]
    assert events == ["Provisioned", "PortedIn"]
    with pytest.raises(errors.NumberNotPortedOut):  # already served here
        ledger.port_in_number(request_id="pi2", actor="t", number=NUMBER, donor_operator="donor-mno")


def test_port_in_brings_back_a_number_ported_out_from_here(ledger, clock) -> None:
    onboard_app(ledger, NUMBER, 1)
    port_out(ledger)
    clock.advance(days=60)
    ledger.port_in_number(request_id="pi", actor="t", number=NUMBER, donor_operator="other-mno")
    num = ledger.get_number(NUMBER)
    assert num.status == "AVAILABLE" and num.ported_out_at is None


def test_port_commands_are_idempotent(ledger) -> None:
    onboard_app(ledger, NUMBER, 1)
    first = ledger.port_out_number(request_id="po", actor="t", number=NUMBER, recipient_operator="other-mno")
    again = ledger.port_out_number(request_id="po", actor="t", number=NUMBER, recipient_operator="other-mno")
    assert again.position == first.position and again.replayed
    with pytest.raises(errors.RequestIdReused):
        ledger.port_out_number(request_id="po", actor="t", number=NUMBER, recipient_operator="third-mno")
