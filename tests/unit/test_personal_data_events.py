"""Which events carry personal data is said once, in the domain; reads, the feed and the export ask it."""

from __future__ import annotations

from pathlib import Path

from eventsourcing.utils import get_topic

from ledger.domain.access import AccessLog
from ledger.domain.indexes import IdentityHoldings, RequestRecord, SimCard
from ledger.domain.number import Number
from ledger.domain.subscriber import (
    PERSONAL_DATA_EVENTS,
    PERSONAL_DATA_TOPICS,
    Subscriber,
    sealed_personal_data,
)
from tests.unit.test_subscriber import ctx, subscriber

ROOT = Path(__file__).resolve().parents[2]
AGGREGATES = (Number, Subscriber, AccessLog, IdentityHoldings, RequestRecord, SimCard)


def event_classes() -> list[type]:
    return [v for a in AGGREGATES for v in vars(a).values() if isinstance(v, type) and issubclass(v, a.Event)]


def test_every_event_with_a_personal_data_field_is_named_and_no_other() -> None:
    with_field = {cls for cls in event_classes() if "personal_data" in getattr(cls, "__annotations__", {})}
    assert with_field == set(PERSONAL_DATA_EVENTS) == {Subscriber.Registered}
    assert {get_topic(cls) for cls in with_field} == PERSONAL_DATA_TOPICS


def test_the_sealed_data_is_found_on_those_events_only() -> None:
    s = subscriber()
    s.verify_identity("PASSPORT_CHECK", "retail", "a1", "ev", ctx(1))
    registered, verified = s.collect_events()
    assert sealed_personal_data(registered) == "v1.ciphertext"
    assert sealed_personal_data(verified) is None


def test_reads_the_feed_and_the_export_do_not_special_case_an_event() -> None:
    users = [
        ROOT / "ledger/application/reads.py",
        ROOT / "ledger/application/feed.py",
        ROOT / "scripts/export_history.py",
    ]
    for path in users:
        source = path.read_text()
        assert "Registered" not in source, path
        assert "sealed_personal_data" in source or "PERSONAL_DATA_TOPICS" in source, path
