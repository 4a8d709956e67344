"""Snapshots of long streams: taken at every hundredth event, used on load, never trusted over the events."""

from __future__ import annotations

from ledger.adapters import snapshot_ids
from ledger.application.commands import DisconnectNumber, PortOutNumber, ResumeNumber, ReturnNumber, SuspendNumber
from ledger.application.pipeline import execute
from ledger.application.verification import verify_integrity
from ledger.bootstrap import open_ledger
from ledger.domain.access import AccessLog
from ledger.domain.number import Number
from ledger.snapshots import SNAPSHOT_INTERVAL, LedgerSnapshot, comparable, replay
from tests.conftest import number, onboard_app


def _long_number(app, clock, msisdn: str, pairs: int, seq: int = 1) -> None:
    onboard_app(app, msisdn, seq)
    for k in range(pairs):
        clock.advance(minutes=1)
        execute(
            app, SuspendNumber(number=msisdn, reason="NON_PAYMENT", note=""), request_id=f"susp-{seq}-{k}", actor="t"
        )
        clock.advance(minutes=1)
        execute(app, ResumeNumber(number=msisdn, note=""), request_id=f"res-{seq}-{k}", actor="t")


def test_long_streams_are_snapshotted_and_loaded_from_the_snapshot(store_app, clock) -> None:
    app = store_app
    msisdn = number(1)
    _long_number(app, clock, msisdn, 130)  # provisioned + activated + 260 = 262 events
    stream = Number.create_id(msisdn)
    versions = [s.originator_version for s in app.snapshots.store.get(stream)]
    assert versions == [SNAPSHOT_INTERVAL, 2 * SNAPSHOT_INTERVAL]
    assert snapshot_ids(app.recorder, app.snapshots.store.recorder) == {stream}
    # The disconnection that follows sees the same state as a full replay, and is decided the same way.
    clock.advance(minutes=1)
    execute(app, DisconnectNumber(number=msisdn, reason="SUBSCRIBER_REQUEST"), request_id="disc", actor="t")
    loaded = app.get_number(msisdn)
    assert loaded.version == 263
    assert comparable(loaded) == comparable(replay(app.events, stream, 263))
    assert loaded.tenures[0].disconnect_reason == "SUBSCRIBER_REQUEST"
    assert app.verify_snapshots() == []


def test_a_snapshot_that_differs_from_its_events_is_reported(store_app, clock) -> None:
    app = store_app
    msisdn = number(2)
    _long_number(app, clock, msisdn, 60)
    stream = Number.create_id(msisdn)
    (snapshot,) = list(app.snapshots.store.get(stream))
    forged = snapshot.mutate(None)
    forged.tenures[0].subscriber_id = forged.id  # a different holder
    _delete_snapshots(app)
    app.snapshots.put([LedgerSnapshot.take(forged)])
    # Loads trust the snapshot (that is what makes them cheap) ...
    assert app.get_number(msisdn).tenures[0].subscriber_id == forged.id
    # ... and verification does not: the forged snapshot is found, for the whole ledger and for the number.
    assert app.verify_snapshots() == [(stream, SNAPSHOT_INTERVAL)]
    for report in (verify_integrity(app, None), verify_integrity(app, msisdn)):
        assert not report.ok and f"snapshot of stream {stream} at version {SNAPSHOT_INTERVAL}" in report.problem
    assert verify_integrity(app, None, up_to=5).ok  # a published digest's check covers events only


def test_access_logs_are_snapshotted_too(store_app, clock) -> None:
    app = store_app
    sid = onboard_app(app, number(3), 3)
    for _ in range(SNAPSHOT_INTERVAL):
        app.record_personal_data_reads([sid], number(3), "court order 7", "auditor")
    stream = AccessLog.create_id(sid)
    assert [s.originator_version for s in app.snapshots.store.get(stream)] == [SNAPSHOT_INTERVAL]
    assert app.repository.get(stream).reads == SNAPSHOT_INTERVAL
    assert app.verify_snapshots() == []


def _delete_snapshots(app) -> None:
    recorder = app.snapshots.recorder
    table = recorder.events_table_name
    if hasattr(recorder.datastore, "schema"):
        table = f'"{recorder.datastore.schema}"."{table}"'
    with recorder.datastore.transaction(commit=True) as c:
        c.execute(f"DELETE FROM {table}")


def test_another_process_s_snapshots_are_learnt_and_lost_ones_taken_again(store_settings, clock) -> None:
    first = open_ledger(store_settings, clock)
    second = open_ledger(store_settings, clock)  # started before the streams grew long
    third = None
    try:
        # A stream the first process snapshotted at exactly the version the second then loads: the second
        # finds that snapshot already stored and learns of it.
        exact, later = number(4), number(5)
        _long_number(first, clock, exact, (SNAPSHOT_INTERVAL - 2) // 2, seq=4)
        exact_id = Number.create_id(exact)
        assert first.get_number(exact).version == SNAPSHOT_INTERVAL and exact_id not in second.snapshots.known
        execute(second, SuspendNumber(number=exact, reason="FRAUD", note=""), request_id="exact-susp", actor="t")
        assert exact_id in second.snapshots.known
        assert [s.originator_version for s in second.snapshots.store.get(exact_id)] == [SNAPSHOT_INTERVAL]
        # A stream already past its snapshot: the second replays it once and snapshots it where it loaded it.
        _long_number(first, clock, later, 60, seq=5)  # 122 events, snapshot at 100 by the first
        later_id = Number.create_id(later)
        execute(second, SuspendNumber(number=later, reason="FRAUD", note=""), request_id="later-susp", actor="t")
        assert [s.originator_version for s in second.snapshots.store.get(later_id)] == [SNAPSHOT_INTERVAL, 122]
        assert second.get_number(later).version == 123
        assert comparable(second.get_number(later)) == comparable(replay(second.events, later_id, 123))
        # Snapshots deleted: a process that loads the stream takes one again.
        _delete_snapshots(first)
        third = open_ledger(store_settings, clock)
        clock.advance(minutes=1)
        execute(third, ResumeNumber(number=later, note=""), request_id="later-res", actor="t")
        assert [s.originator_version for s in third.snapshots.store.get(later_id)] == [123]
        assert snapshot_ids(third.recorder, third.snapshots.store.recorder) == {later_id}
        assert third.verify_snapshots() == []
    finally:
        for app in (first, second, third):
            if app is not None:
                app.close()
                app.vault.store.close()


def test_a_ported_number_snapshotted_loads_as_its_events_say(store_app, clock) -> None:
    """Port-out, return and port-in state (ported_out_at, the tenure's port and the recipient's
    disconnection) survive a snapshot, on both stores."""
    app = store_app
    msisdn = number(5)
    _long_number(app, clock, msisdn, 48, seq=5)  # 98 events
    clock.advance(minutes=1)
    execute(app, PortOutNumber(number=msisdn, recipient_operator="other-mno"), request_id="po", actor="t")  # 99
    clock.advance(days=3)
    execute(app, ReturnNumber(number=msisdn, disconnected_at=clock.now()), request_id="ret", actor="t")  # 100: snapshot
    stream = Number.create_id(msisdn)
    assert [s.originator_version for s in app.snapshots.store.get(stream)] == [SNAPSHOT_INTERVAL]
    loaded = app.get_number(msisdn)
    assert comparable(loaded) == comparable(replay(app.events, stream, 100))
    assert loaded.tenures[0].ported_to == "other-mno" and loaded.tenures[0].recipient_disconnected_at == clock.now()
    assert loaded.status == "QUARANTINED" and loaded.ported_out_at is None
    assert app.verify_snapshots() == []
