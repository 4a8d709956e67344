"""Number aggregate: state machine, tenures, quarantine and clearance, called directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_URL, uuid4, uuid5

import pytest

from ledger.domain import errors
from ledger.domain.context import Context
from ledger.domain.indexes import IdentityHoldings, SimCard
from ledger.domain.number import Number
from ledger.domain.rules import Clearance, NumberStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOLDERS = ["crm", "billing", "voicemail"]


def ctx(days: float = 0, rid: str = "r") -> Context:
    return Context(actor="tester", request_id=rid, occurred_at=T0 + timedelta(days=days))


def active_number(days: float = 0) -> Number:
    n = Number(number="+8613800000001", **ctx(days).fields())
    n.activate(uuid4(), "89860000000000000001", "460000000000001", "retail", "a1", ctx(days))
    return n


def test_provisioned_number_is_available_with_a_stable_id() -> None:
    n = Number(number="+8613800000001", **ctx().fields())
    assert n.status == NumberStatus.AVAILABLE
    assert n.id == Number.create_id("+8613800000001")
    assert n.current_tenure is None


def test_activation_opens_a_tenure_with_a_derived_id() -> None:
    n = active_number()
    assert n.status == NumberStatus.ACTIVE
    tenure = n.current_tenure
    assert tenure is not None
    assert tenure.tenure_id == Number.tenure_id_for("+8613800000001", 1)
    assert [type(e).__name__ for e in n.collect_events()] == ["Provisioned", "Activated"]


def test_activating_a_number_that_is_not_available_is_refused() -> None:
    n = active_number()
    with pytest.raises(errors.NumberNotAvailable) as e:
        n.activate(uuid4(), "89860000000000000002", "460000000000002", "retail", "a1", ctx(1))
    assert e.value.reason == "NUMBER_NOT_AVAILABLE"


def test_suspend_and_resume_only_from_the_right_states() -> None:
    n = active_number()
    with pytest.raises(errors.NumberNotSuspended):
        n.resume("", ctx(1))
    n.suspend("FRAUD", "case 1", ctx(1))
    assert n.status == NumberStatus.SUSPENDED and n.suspension_reason == "FRAUD"
    with pytest.raises(errors.NumberNotActive):
        n.suspend("SPAM", "", ctx(2))
    n.resume("cleared", ctx(2))
    assert n.status == NumberStatus.ACTIVE and n.suspension_reason is None


def test_events_may_not_go_back_in_time() -> None:
    n = active_number(days=5)
    with pytest.raises(errors.OccurredAtOutOfOrder) as e:
        n.suspend("FRAUD", "", ctx(4))
    assert e.value.violations[0][0] == "occurred_at"
    n.suspend("FRAUD", "", ctx(5))  # the same instant is allowed


def test_swap_sim_moves_the_tenure_and_refuses_the_same_sim() -> None:
    n = active_number()
    with pytest.raises(errors.SameIccid):
        n.swap_sim("89860000000000000001", "460000000000001", "DAMAGED", "retail", "a1", ctx(1))
    old = n.swap_sim("89860000000000000099", "460000000000099", "DAMAGED", "retail", "a1", ctx(1))
    assert old == "89860000000000000001"
    assert n.current_tenure is not None and n.current_tenure.iccid == "89860000000000000099"


def test_disconnect_starts_quarantine_and_opens_clearance_per_holder() -> None:
    n = active_number()
    tenure = n.disconnect("SUBSCRIBER_REQUEST", 90, HOLDERS, ctx(10))
    assert n.status == NumberStatus.QUARANTINED
    assert tenure.quarantine_until == T0 + timedelta(days=100)
    assert tenure.clearance == Clearance.PENDING
    assert tenure.outstanding_holders == HOLDERS
    with pytest.raises(errors.NumberNotInService):
        n.disconnect("OTHER", 90, HOLDERS, ctx(11))


def test_release_is_refused_before_quarantine_ends_and_while_clearance_is_pending() -> None:
    n = active_number()
    tenure = n.disconnect("SUBSCRIBER_REQUEST", 90, HOLDERS, ctx(0))
    with pytest.raises(errors.QuarantineNotElapsed):
        n.release("", ctx(89))
    with pytest.raises(errors.ClearancePending) as e:
        n.release("", ctx(90))
    assert e.value.metadata["outstanding_holders"] == "crm,billing,voicemail"
    for i, holder in enumerate(HOLDERS):
        n.confirm_data_cleared(tenure.tenure_id, holder, f"ev-{holder}", ctx(90 + i / 10))
    assert tenure.clearance == Clearance.CLEARED
    n.release("", ctx(91))
    assert n.status == NumberStatus.AVAILABLE
    assert n.closed_tenures()[0].clearance == Clearance.CLEARED


def test_override_release_with_pending_clearance_reads_violation() -> None:
    n = active_number()
    tenure = n.disconnect("FRAUD", 90, HOLDERS, ctx(0))
    n.confirm_data_cleared(tenure.tenure_id, "crm", "ev", ctx(1))
    n.release("court order 42", ctx(2))
    assert n.status == NumberStatus.AVAILABLE
    assert tenure.clearance == Clearance.VIOLATION
    assert tenure.override_reason == "court order 42"
    # A late confirmation is still recorded, but the violation stays.
    n.confirm_data_cleared(tenure.tenure_id, "billing", "ev", ctx(3))
    assert tenure.clearance == Clearance.VIOLATION


def test_override_of_quarantine_alone_keeps_clearance_cleared() -> None:
    n = active_number()
    tenure = n.disconnect("FRAUD", 90, HOLDERS, ctx(0))
    for holder in HOLDERS:
        n.confirm_data_cleared(tenure.tenure_id, holder, "ev", ctx(1))
    n.release("number porting deadline", ctx(2))
    assert tenure.clearance == Clearance.CLEARED


def test_clearance_confirmation_rules() -> None:
    n = active_number()
    open_tenure = n.current_tenure
    assert open_tenure is not None
    with pytest.raises(errors.TenureNotClosed):
        n.confirm_data_cleared(open_tenure.tenure_id, "crm", "ev", ctx(1))
    with pytest.raises(errors.TenureNotFound):
        n.confirm_data_cleared(uuid4(), "crm", "ev", ctx(1))
    n.disconnect("OTHER", 90, HOLDERS, ctx(1))
    n.confirm_data_cleared(open_tenure.tenure_id, "crm", "ev", ctx(2))
    with pytest.raises(errors.HolderAlreadyConfirmed):
        n.confirm_data_cleared(open_tenure.tenure_id, "crm", "ev", ctx(2))


def test_release_only_from_quarantine() -> None:
    with pytest.raises(errors.NumberNotQuarantined):
        active_number().release("", ctx(1))


def test_second_tenure_after_recycling_gets_its_own_id() -> None:
    n = active_number()
    first = n.disconnect("OTHER", 0, [], ctx(1))
    n.release("", ctx(1))
    second = n.activate(uuid4(), "89860000000000000002", "460000000000002", "retail", "a1", ctx(2))
    assert second == Number.tenure_id_for(n.number, 2) != first.tenure_id
    assert len(n.tenures) == 2


def test_identity_cap_counts_open_tenures() -> None:
    h = IdentityHoldings(identity_key="k", **ctx().fields())
    tenures = [uuid4() for _ in range(3)]
    sid = uuid4()
    for i, t in enumerate(tenures[:2]):
        h.open_tenure(t, f"+86138000000{i}", sid, 2, ctx())
    with pytest.raises(errors.IdentityNumberCap):
        h.open_tenure(tenures[2], "+8613800000009", sid, 2, ctx())
    h.close_tenure(tenures[0], ctx())
    h.open_tenure(tenures[2], "+8613800000009", sid, 2, ctx())
    with pytest.raises(errors.SubscriberHasOpenTenure):
        h.record_erasure(sid, ctx())


def test_sim_serves_one_open_tenure() -> None:
    sim = SimCard(iccid="89860000000000000001", **ctx().fields())
    sim.assign("+8613800000001", uuid4(), ctx())
    with pytest.raises(errors.IccidInUse):
        sim.assign("+8613800000002", uuid4(), ctx())
    sim.unassign(ctx())
    sim.assign("+8613800000002", uuid4(), ctx())


def test_a_stream_id_is_derived_once_per_key_while_commands_reuse_it() -> None:
    # A command derives the same ids several times (its streams, then each load and each new aggregate):
    # the SHA-1 and UUID of a key are computed once and the id shared (UUIDs are immutable).
    first = Number.create_id("+8613800138000")
    assert Number.create_id("+8613800138000") is first
    assert first == uuid5(NAMESPACE_URL, "/numbers/+8613800138000")
    assert SimCard.create_id("89860012345678901234") == uuid5(NAMESPACE_URL, "/iccids/89860012345678901234")
