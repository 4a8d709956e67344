"""What release 0.1.0 stored stays readable: every event and snapshot topic, states, chains and keys.

The fixture (``tests/fixtures/release-0.1.0.db`` and its key store) was recorded by the 0.1.0 code with
``tests/fixtures/make_release_ledger.py``; never regenerate it with newer code. A module move that
breaks a stored topic (``module:Class.Event``) fails here; register the old topic (``register_topic``)
or keep the class where it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from uuid import UUID

import pytest
from eventsourcing.utils import resolve_topic

from ledger.application.commands import ProvisionNumbers
from ledger.application.pipeline import execute
from ledger.application.reads import number_history
from ledger.application.verification import verify_integrity
from ledger.bootstrap import open_ledger
from ledger.config import Settings
from ledger.domain.access import AccessLog
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber
from ledger.snapshots import LedgerSnapshot
from tests.fixtures.make_release_ledger import MASTER_KEY, NUMBER, RECYCLED

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def old_ledger(tmp_path: Path):
    for name in ("release-0.1.0.db", "release-0.1.0.keys.db"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    settings = Settings.build(
        db=f"sqlite:///{tmp_path / 'release-0.1.0.db'}", environ={"LEDGER_MASTER_KEY": MASTER_KEY}
    )
    app = open_ledger(settings)
    yield app
    app.close()
    app.vault.store.close()


def test_every_stored_event_decodes(old_ledger) -> None:
    notifications = old_ledger.recorder.select_notifications(start=1, limit=1000)
    assert len(notifications) == 331
    for n in notifications:
        event = old_ledger.mapper.to_domain_event(n)
        assert type(event).__module__ + ":" + type(event).__qualname__ == n.topic


def test_snapshots_of_release_load_and_match_their_events(old_ledger) -> None:
    store = old_ledger.snapshots.store
    number_id, log_id = Number.create_id(NUMBER), None
    snapshots = list(store.get(number_id))
    assert [(type(s), s.originator_version) for s in snapshots] == [(LedgerSnapshot, 100)]
    assert resolve_topic(snapshots[0].topic) is Number
    assert old_ledger.verify_snapshots() == []
    number = old_ledger.get_number(NUMBER)
    assert (number.status, number.version, len(number.tenures)) == ("AVAILABLE", 102, 1)
    subscriber_id = number.tenures[0].subscriber_id
    log_id = AccessLog.create_id(subscriber_id)
    log_snapshots = list(store.get(log_id))
    assert [s.originator_version for s in log_snapshots] == [100]
    assert old_ledger.repository.get(log_id).version == 101


def test_release_history_chains_and_erasure_read_as_before(old_ledger) -> None:
    report = verify_integrity(old_ledger, None)
    assert (report.ok, report.events_checked, report.head_position) == (True, 331, 331)
    assert verify_integrity(old_ledger, NUMBER).ok
    items = number_history(old_ledger, RECYCLED, include_personal_data=False)
    assert [i.type_name for i in items if i.stream_type == "number"] == [
        "NumberProvisioned",
        "NumberActivated",
        "NumberDisconnected",
    ]
    registered = [i for i in items if i.type_name == "SubscriberRegistered"]
    assert [i.personal_state for i in registered] == ["ERASED"]
    subscriber = old_ledger.get_subscriber(UUID(str(registered[0].subscriber_id)))
    assert isinstance(subscriber, Subscriber)
    assert subscriber.is_erased
    first = old_ledger.get_number(NUMBER).tenures[0]
    assert str(first.clearance) == "VIOLATION"


def test_the_release_ledger_migrates_to_authenticated_batches_and_verifies(tmp_path: Path) -> None:
    # Its 331 events were written before batch MACs: covered by the signed heads only, from migration on
    # every batch is authenticated; offline, with the master key, everything verifies.
    from ledger.bootstrap import migrate
    from ledger.proofs.batches import MACS_FROM
    from scripts import verify_ledger

    for name in ("release-0.1.0.db", "release-0.1.0.keys.db"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    db = f"sqlite:///{tmp_path / 'release-0.1.0.db'}"
    settings = Settings.build(db=db, environ={"LEDGER_MASTER_KEY": MASTER_KEY})
    summary = migrate(settings)
    assert "Merkle tree (+331 leaves)" in summary and "batches authenticated from position 332" in summary
    app = open_ledger(settings)
    try:
        assert app.batches.marks()[MACS_FROM].position == 332
        execute(app, ProvisionNumbers(numbers=["+8613800138999"]), request_id="after-migration", actor="ops")
        assert [(b.first, b.last) for b in app.batches.batches(0, 10)] == [(332, app.reader.max_position())]
        assert verify_integrity(app, None).ok and verify_integrity(app, NUMBER).ok
    finally:
        app.close()
        app.vault.store.close()
    key = tmp_path / "master.key"
    key.write_text(MASTER_KEY)
    assert verify_ledger.main(["--db", db, "--master-key-file", str(key)]) == 0
    assert verify_ledger.main(["--db", db, "--master-key-file", str(key), "--number", NUMBER]) == 0
