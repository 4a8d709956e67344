"""The same application behaviour on both stores: SQLite file and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import pytest

from ledger.application.commands import (
    ActivateSim,
    DisconnectNumber,
    EraseSubscriberData,
    ProvisionNumbers,
    RegisterSubscriber,
    ResumeNumber,
    SuspendNumber,
    VerifyIdentity,
)
from ledger.application.pipeline import execute
from ledger.application.reads import number_history, number_state
from ledger.application.verification import verify_integrity
from ledger.domain import errors
from tests.conftest import imsi_for, new_iccid, number
from tests.conftest import onboard_app as onboard


def test_lifecycle_history_state_and_integrity(store_app) -> None:
    app = store_app
    sid = onboard(app, number(1), 1)
    execute(app, SuspendNumber(number=number(1), reason="FRAUD", note=""), request_id="s", actor="t")
    with pytest.raises(errors.NumberNotActive):
        execute(app, SuspendNumber(number=number(1), reason="FRAUD", note=""), request_id="s2", actor="t")
    execute(app, DisconnectNumber(number=number(1), reason="FRAUD"), request_id="d", actor="t")
    execute(app, EraseSubscriberData(subscriber_id=sid, legal_basis="PIPL"), request_id="e", actor="t")
    items = number_history(app, number(1), include_personal_data=True, actor="t", purpose="audit")
    positions = [i.position for i in items]
    assert positions == sorted(positions)
    assert [i.personal_state for i in items if i.type_name == "SubscriberRegistered"] == ["ERASED"]
    assert number_state(app, number(1), None).status == "QUARANTINED"
    report = verify_integrity(app, None)
    assert report.ok and report.events_checked == app.reader.max_position()
    assert verify_integrity(app, number(1)).ok


def test_positions_stay_gap_free_through_conflicts(store_app) -> None:
    app = store_app
    onboard(app, number(1), 1)

    def toggle(i: int) -> None:
        try:
            if i % 2:
                execute(app, SuspendNumber(number=number(1), reason="SPAM", note=""), request_id=f"x{i}", actor="t")
            else:
                execute(app, ResumeNumber(number=number(1), note=""), request_id=f"x{i}", actor="t")
        except errors.RuleViolation:
            pass

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(toggle, range(80)))
    positions = [p.position for p in app.reader.read_streams([app.get_number(number(1)).id])]
    head = app.reader.max_position()
    assert len(list(app.reader.chained())) == head  # every position from 1 to head is there
    assert positions == sorted(positions)
    assert verify_integrity(app, None).ok


def test_idempotency_and_cap_on_each_store(store_app) -> None:
    app = store_app
    first = execute(app, ProvisionNumbers(numbers=[number(5)]), request_id="same", actor="t")
    again = execute(app, ProvisionNumbers(numbers=[number(5)]), request_id="same", actor="t")
    assert again.position == first.position and again.replayed
    with pytest.raises(errors.RequestIdReused):
        execute(app, ProvisionNumbers(numbers=[number(6)]), request_id="same", actor="t")
    numbers = [number(10 + i) for i in range(6)]
    execute(app, ProvisionNumbers(numbers=numbers), request_id="many", actor="t")
    sid = UUID(
        execute(
            app,
            RegisterSubscriber(full_name="Cap", id_type="PASSPORT", id_number="E1234567", date_of_birth=""),
            request_id="r",
            actor="t",
        ).data["subscriber_id"]
    )
    execute(
        app,
        VerifyIdentity(subscriber_id=sid, method="PASSPORT_CHECK", channel="c", agent_id="a", evidence_ref="e"),
        request_id="v",
        actor="t",
    )

    def activate(msisdn: str) -> str:
        iccid = new_iccid()
        try:
            execute(
                app,
                ActivateSim(
                    number=msisdn, subscriber_id=sid, iccid=iccid, imsi=imsi_for(iccid), channel="c", agent_id="a"
                ),
                request_id=f"a{msisdn}",
                actor="t",
            )
            return "ok"
        except errors.IdentityNumberCap:
            return "cap"

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(activate, numbers))
    assert results.count("ok") == 5 and results.count("cap") == 1


def test_two_projectors_on_the_same_views_apply_every_event_once(store_settings, store_app) -> None:
    import threading

    from ledger.bootstrap import open_projector

    app = store_app
    for i in range(8):
        onboard(app, number(100 + i), 100 + i)
        execute(app, SuspendNumber(number=number(100 + i), reason="FRAUD", note=""), request_id=f"s{i}", actor="t")
        execute(app, DisconnectNumber(number=number(100 + i), reason="FRAUD"), request_id=f"d{i}", actor="t")
    projectors = [open_projector(store_settings, app) for _ in range(2)]
    for p in projectors:
        p.batch_size = 7
    threads = [threading.Thread(target=p.catch_up) for p in projectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    from projections.people import PeopleQueries
    from projections.queries import ReadModels

    read = ReadModels(projectors[0].views_db)
    before = (PeopleQueries(read).agents(), read.clearance_counts(), read.status_counts(), read.position())
    assert before[3] == app.reader.max_position()
    assert sum(a["violations"] for a in before[0]) == 8 and sum(a["activations"] for a in before[0]) == 8
    projectors[0].rebuild()
    assert (PeopleQueries(read).agents(), read.clearance_counts(), read.status_counts(), read.position()) == before
    read.close()
    for p in projectors:
        p.close()


def test_group_commit_shares_transactions_and_keeps_every_command_separate(store_app) -> None:
    from ledger.domain.indexes import RequestRecord

    app = store_app
    assert app.committer is not None
    before_batches, before_commands = app.committer.batches, app.committer.commands
    with ThreadPoolExecutor(16) as pool:
        results = list(
            pool.map(
                lambda i: execute(
                    app,
                    RegisterSubscriber(full_name=f"G {i}", id_type="PASSPORT", id_number=f"G{i:07d}", date_of_birth=""),
                    request_id=f"g{i}",
                    actor="t",
                ),
                range(40),
            )
        )
    assert app.committer.commands - before_commands == 40
    assert app.committer.batches - before_batches <= 40
    assert len({r.position for r in results}) == 40
    # Each command's position is its own last event (its request record), and the ledger verifies.
    for i, r in enumerate(results):
        assert app.reader.position_of(RequestRecord.create_id(f"g{i}"), 1) == r.position
    assert verify_integrity(app, None).ok


def test_group_commit_saves_a_lone_callers_command_on_its_own_thread(store_app) -> None:
    import threading

    # With no commit under way there is no one to wait for: handing the save to another thread and back
    # would only cost two thread switches.
    app = store_app
    saved_on: list[threading.Thread] = []
    app.appended = lambda _count: saved_on.append(threading.current_thread())
    execute(app, ProvisionNumbers(numbers=[number(500)]), request_id="lone-1", actor="t")
    execute(app, ProvisionNumbers(numbers=[number(501)]), request_id="lone-2", actor="t")
    assert app.committer is not None
    assert saved_on == [threading.current_thread()] * 2


def test_writers_taking_turns_keep_one_whole_chain(store_app, store_settings, clock) -> None:
    # Each recorder remembers the end of the chain it last wrote and reads the chain's head only when
    # another writer has written since: the turns below make every insert of each one follow the other's.
    from ledger.bootstrap import open_ledger

    other = open_ledger(store_settings, clock)
    try:
        for i in range(6):
            writer = store_app if i % 2 else other
            execute(writer, ProvisionNumbers(numbers=[number(600 + i)]), request_id=f"turn-{i}", actor="t")
            execute(writer, ProvisionNumbers(numbers=[number(700 + i)]), request_id=f"again-{i}", actor="t")
        assert verify_integrity(store_app, None).ok
        assert verify_integrity(other, None).ok
    finally:
        other.close()
        other.vault.store.close()


def test_group_commit_conflicting_writes_fail_alone(store_app) -> None:
    import threading

    from eventsourcing.persistence import IntegrityError

    from ledger.domain.context import Context

    app = store_app
    onboard(app, number(400), 400)
    ctx = Context(actor="t", request_id="x", occurred_at=app.clock.now())
    # Two copies of the same number at the same version, each deciding a different change.
    first, second = app.get_number(number(400)), app.get_number(number(400))
    first.suspend("SPAM", "", ctx)
    second.suspend("FRAUD", "", ctx)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def submit(aggregate) -> None:
        barrier.wait()
        try:
            app.committer.submit(list(aggregate.collect_events()))
            outcomes.append("ok")
        except IntegrityError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=submit, args=(a,)) for a in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["conflict", "ok"]
    assert app.get_number(number(400)).status == "SUSPENDED"
    assert verify_integrity(app, None).ok


@pytest.mark.parametrize("store_settings", ["postgres"], indirect=True)
def test_postgres_writers_leave_room_for_vacuum_and_analyze(store_app, store_settings) -> None:
    """Writers serialise on an advisory lock, never on a table lock that conflicts with VACUUM and ANALYZE
    (autovacuum, cancelled by every writer queued behind it, never analysed the events table): sampled
    while writes go on without pause, the writers hold the advisory lock and no lock on the events
    table stronger than an insert's; ANALYZE and VACUUM of the table run meanwhile."""
    import threading

    import psycopg

    app = store_app
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        while not stop.is_set():
            i = written[0]
            execute(app, ProvisionNumbers(numbers=[f"+86139{i:08d}"]), request_id=f"p{i}", actor="t")
            written[0] = i + 1

    seen: set[tuple[str, str]] = set()
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with psycopg.connect(store_settings.store.conninfo(), autocommit=True) as conn:
            conn.execute("SET lock_timeout = '2s'")
            rounds = 0
            while rounds < 300 or written[0] < 50 or ("advisory", "ExclusiveLock") not in seen:
                rows = conn.execute(
                    "SELECT l.locktype, l.mode FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation "
                    "WHERE l.granted AND l.pid <> pg_backend_pid() "
                    "AND (l.locktype = 'advisory' OR c.relname = 'ledger_events')"
                ).fetchall()
                seen.update(rows)
                rounds += 1
                if rounds % 100 == 0:
                    conn.execute("ANALYZE ledger_events")
                    conn.execute("VACUUM ledger_events")
                assert rounds < 20_000, seen
    finally:
        stop.set()
        thread.join()
    assert ("relation", "RowExclusiveLock") in seen  # the inserts were seen too
    assert {mode for kind, mode in seen if kind == "relation"} <= {"AccessShareLock", "RowExclusiveLock"}
    assert len(list(app.reader.chained())) == app.reader.max_position()  # still gap-free
