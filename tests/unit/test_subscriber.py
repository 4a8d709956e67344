"""Subscriber aggregate: verification and erasure rules, called directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from ledger.domain import errors
from ledger.domain.context import Context
from ledger.domain.subscriber import Subscriber

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ctx(days: float = 0) -> Context:
    return Context(actor="tester", request_id="r", occurred_at=T0 + timedelta(days=days))


def subscriber() -> Subscriber:
    return Subscriber.register(uuid4(), "PASSPORT", "key", "v1.ciphertext", ctx())


def test_registration_keeps_only_ciphertext_and_the_chosen_id() -> None:
    sid = uuid4()
    s = Subscriber.register(sid, "PASSPORT", "key", "v1.ciphertext", ctx())
    assert s.id == sid and s.personal_data == "v1.ciphertext"
    assert not s.verifications and not s.is_erased


def test_unverified_subscriber_may_not_hold_a_number() -> None:
    s = subscriber()
    with pytest.raises(errors.IdentityNotVerified):
        s.ensure_may_hold_number(T0)


def test_verification_counts_from_its_own_time() -> None:
    s = subscriber()
    s.verify_identity("PASSPORT_CHECK", "retail", "a1", "ev", ctx(2))
    assert not s.is_verified_at(T0 + timedelta(days=1))
    with pytest.raises(errors.IdentityNotVerified):
        s.ensure_may_hold_number(T0 + timedelta(days=1))
    s.ensure_may_hold_number(T0 + timedelta(days=2))


def test_erased_subscriber_can_neither_be_verified_nor_hold_a_number_nor_be_erased_twice() -> None:
    s = subscriber()
    s.verify_identity("PASSPORT_CHECK", "retail", "a1", "ev", ctx(1))
    s.erase("PIPL art. 47", ctx(2))
    assert s.is_erased
    with pytest.raises(errors.SubscriberErased):
        s.ensure_may_hold_number(T0 + timedelta(days=3))
    with pytest.raises(errors.SubscriberErased):
        s.verify_identity("PASSPORT_CHECK", "retail", "a1", "ev", ctx(3))
    with pytest.raises(errors.SubscriberErased):
        s.erase("again", ctx(3))


def test_subscriber_events_may_not_go_back_in_time() -> None:
    s = subscriber()
    s.verify_identity("PASSPORT_CHECK", "retail", "a1", "ev", ctx(5))
    with pytest.raises(errors.OccurredAtOutOfOrder):
        s.erase("x", ctx(4))
