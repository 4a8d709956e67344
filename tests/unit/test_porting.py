"""Number portability on the in-memory adapter: a port ends a tenure without a change of holder, a
ported-out number is never released here, a returned one is quarantined from the recipient's
disconnection, and another operator's number enters by port-in."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from ledger.adapters.memory import memory_env
from ledger.application import LedgerApplication
from ledger.application.commands import (
    ConfirmDataCleared,
    DisconnectNumber,
    EraseSubscriberData,
    PortInNumber,
    PortOutNumber,
    ReleaseNumber,
    ReturnNumber,
)
from ledger.application.pipeline import execute
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
    result = execute(app, PortOutNumber(number=number, recipient_operator="other-mno"), request_id=rid, actor="t")
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
        execute(ledger, ReleaseNumber(number=NUMBER, override_reason=""), request_id="rel", actor="t")
    assert refused.value.reason == "NUMBER_PORTED_OUT"
    with pytest.raises(errors.NumberPortedOut):
        execute(ledger, ReleaseNumber(number=NUMBER, override_reason="ops said so"), request_id="rel2", actor="t")
    with pytest.raises(errors.NumberNotInService):
        execute(ledger, DisconnectNumber(number=NUMBER, reason="SUBSCRIBER_REQUEST"), request_id="d", actor="t")


def test_clearance_of_the_ported_tenure_is_confirmed_as_usual(ledger, clock) -> None:
    onboard_app(ledger, NUMBER, 1)
    tenure_id = UUID(port_out(ledger))
    for holder in ("crm", "billing", "voicemail"):
        execute(
            ledger,
            ConfirmDataCleared(number=NUMBER, tenure_id=tenure_id, holder=holder, evidence_ref="e"),
            request_id=f"c-{holder}",
            actor="t",
        )
    assert ledger.get_number(NUMBER).tenure(tenure_id).clearance == "CLEARED"


def test_the_former_holder_may_be_erased_after_a_port_out(ledger) -> None:
    sid = onboard_app(ledger, NUMBER, 1)
    with pytest.raises(errors.SubscriberHasOpenTenure):
        execute(ledger, EraseSubscriberData(subscriber_id=sid, legal_basis="PIPL art. 47"), request_id="e0", actor="t")
    port_out(ledger)
    execute(ledger, EraseSubscriberData(subscriber_id=sid, legal_basis="PIPL art. 47"), request_id="e1", actor="t")


def test_disconnect_with_reason_ported_out_is_refused_naming_port_out(ledger) -> None:
    onboard_app(ledger, NUMBER, 1)
    with pytest.raises(errors.InvalidArgument) as refused:
        execute(ledger, DisconnectNumber(number=NUMBER, reason="PORTED_OUT"), request_id="d", actor="t")
    assert refused.value.violations == [("reason", "a port-out is recorded with PortOutNumber, not DisconnectNumber")]
    assert ledger.get_number(NUMBER).status == "ACTIVE"


def test_returned_number_is_quarantined_from_the_recipients_disconnection_then_released(ledger, clock) -> None:
    onboard_app(ledger, NUMBER, 1)
    tenure_id = UUID(port_out(ledger))
    ported_at = clock.now()
    clock.advance(days=200)
    disconnected = ported_at + timedelta(days=150)
    result = execute(ledger, ReturnNumber(number=NUMBER, disconnected_at=disconnected), request_id="ret", actor="t")
    until = disconnected + timedelta(days=90)
    assert result.data["quarantine_until"] == until.isoformat()
    num = ledger.get_number(NUMBER)
    assert num.status == "QUARANTINED" and num.ported_out_at is None
    assert num.tenure(tenure_id).recipient_disconnected_at == disconnected
    with pytest.raises(errors.QuarantineNotElapsed):
        execute(ledger, ReleaseNumber(number=NUMBER, override_reason=""), request_id="rel-1", actor="t")
    clock.t = until
    with pytest.raises(errors.ClearancePending):
        execute(ledger, ReleaseNumber(number=NUMBER, override_reason=""), request_id="rel-2", actor="t")
    for holder in ("crm", "billing", "voicemail"):
        execute(
            ledger,
            ConfirmDataCleared(number=NUMBER, tenure_id=tenure_id, holder=holder, evidence_ref="e"),
            request_id=f"c-{holder}",
            actor="t",
        )
    execute(ledger, ReleaseNumber(number=NUMBER, override_reason=""), request_id="rel-3", actor="t")
    assert ledger.get_number(NUMBER).status == "AVAILABLE"


def test_return_is_refused_for_a_number_served_here_or_with_dates_out_of_order(ledger, clock) -> None:
    onboard_app(ledger, NUMBER, 1)
    with pytest.raises(errors.NumberNotPortedOut) as refused:
        execute(ledger, ReturnNumber(number=NUMBER, disconnected_at=clock.now()), request_id="x", actor="t")
    assert refused.value.reason == "NUMBER_NOT_PORTED_OUT"
    clock.advance(days=1)
    port_out(ledger)
    clock.advance(days=1)
    before = clock.now() - timedelta(days=2)
    with pytest.raises(errors.InvalidArgument) as early:
        execute(ledger, ReturnNumber(number=NUMBER, disconnected_at=before), request_id="y", actor="t")
    assert early.value.violations[0][0] == "disconnected_at"
    with pytest.raises(errors.InvalidArgument) as late:
        execute(
            ledger,
            ReturnNumber(number=NUMBER, disconnected_at=clock.now() + timedelta(hours=1)),
            request_id="z",
            actor="t",
        )
    assert late.value.violations[0][0] == "disconnected_at"


def test_quarantine_of_a_return_follows_the_numbers_jurisdiction(ledger, clock) -> None:
    onboard_app(ledger, US_NUMBER, 1)
    port_out(ledger, US_NUMBER)
    clock.advance(days=10)
    result = execute(ledger, ReturnNumber(number=US_NUMBER, disconnected_at=clock.now()), request_id="ret", actor="t")
    assert result.data["quarantine_until"] == (clock.now() + timedelta(days=45)).isoformat()


def test_port_in_of_another_operators_number_starts_its_records(ledger, clock) -> None:
    execute(ledger, PortInNumber(number=NUMBER, donor_operator="donor-mno"), request_id="pi", actor="t")
    num = ledger.get_number(NUMBER)
    assert num.status == "AVAILABLE" and num.provisioned_at == clock.now() and num.ported_in_from == "donor-mno"
    events = [type(e).__name__ for e in ledger.repository.event_store.get(Number.create_id(NUMBER))]
    assert events == ["Provisioned", "PortedIn"]
    with pytest.raises(errors.NumberNotPortedOut):  # already served here
        execute(ledger, PortInNumber(number=NUMBER, donor_operator="donor-mno"), request_id="pi2", actor="t")


def test_port_in_brings_back_a_number_ported_out_from_here(ledger, clock) -> None:
    onboard_app(ledger, NUMBER, 1)
    port_out(ledger)
    clock.advance(days=60)
    execute(ledger, PortInNumber(number=NUMBER, donor_operator="other-mno"), request_id="pi", actor="t")
    num = ledger.get_number(NUMBER)
    assert num.status == "AVAILABLE" and num.ported_out_at is None


def test_port_commands_are_idempotent(ledger) -> None:
    onboard_app(ledger, NUMBER, 1)
    first = execute(ledger, PortOutNumber(number=NUMBER, recipient_operator="other-mno"), request_id="po", actor="t")
    again = execute(ledger, PortOutNumber(number=NUMBER, recipient_operator="other-mno"), request_id="po", actor="t")
    assert again.position == first.position and again.replayed
    with pytest.raises(errors.RequestIdReused):
        execute(ledger, PortOutNumber(number=NUMBER, recipient_operator="third-mno"), request_id="po", actor="t")
