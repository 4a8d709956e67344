"""Property: after any valid command sequence, every read model equals what a replay of the events gives,
also after an interrupted projection is restarted and after a rebuild from position 0."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ledger.application import LedgerApplication
from ledger.application.commands import (
    ActivateSim,
    ConfirmDataCleared,
    DisconnectNumber,
    EraseSubscriberData,
    PortInNumber,
    PortOutNumber,
    ProvisionNumbers,
    RegisterSubscriber,
    ReleaseNumber,
    ResumeNumber,
    ReturnNumber,
    SuspendNumber,
    SwapSim,
    VerifyIdentity,
)
from ledger.application.key_jobs import erase_due
from ledger.application.pipeline import execute
from ledger.bootstrap import open_ledger, open_projector, row_seal
from ledger.config import Settings, StoreConfig
from ledger.domain.errors import LedgerError, NumberNotFound
from ledger.domain.number import Number
from ledger.domain.subscriber import Subscriber
from ledger.policy import Policy
from projections.db import ViewsDatabase
from projections.projector import Projector
from projections.views import VIOLATION_DISCONNECTIONS, VIOLATION_SUSPENSIONS, NumbersView, us
from tests import views as vt
from tests.conftest import TEST_MASTER_KEY, FakeClock, imsi_for, new_iccid, number, resident_id

N_NUMBERS, N_PEOPLE = 3, 5
# Weighted so that tenures open, close, clear and recycle often.
OPS = (
    "register",
    "verify",
    "activate",
    "activate",
    "activate",
    "suspend",
    "resume",
    "swap",
    "disconnect",
    "disconnect",
    "confirm",
    "confirm",
    "confirm",
    "release",
    "override",
    "erase",
    "port_out",
    "port_in",
    "return",
    "wait",
    "wait",
)
PORTING_OPS = ("port_out", "port_in", "return")
steps = st.lists(
    st.tuples(
        st.sampled_from((*OPS, "erase_due")),
        st.integers(0, N_NUMBERS - 1),
        st.integers(0, N_PEOPLE - 1),
        st.sampled_from(["FRAUD", "SPAM", "LOST_SIM", "NON_PAYMENT"]),
        st.sampled_from(["shop", "web"]),
    ),
    min_size=15,
    max_size=80,
)


class Driver:
    """Applies random commands; refusals are part of the game (only valid commands record events)."""

    def __init__(self, app: LedgerApplication, clock: FakeClock) -> None:
        self.app, self.clock = app, clock
        self.subscribers: list[UUID] = []
        self.n = 0
        execute(app, ProvisionNumbers(numbers=[number(i) for i in range(N_NUMBERS)]), request_id="prov", actor="t")
        for pi in range(N_PEOPLE - 1):  # most people start registered and verified; the last one is not
            self.step("register", 0, pi, "FRAUD", "shop")
            self.step("verify", 0, pi, "FRAUD", "shop" if pi % 2 else "web")

    def rid(self) -> str:
        self.n += 1
        return f"r{self.n}"

    def step(self, op: str, ni: int, pi: int, reason: str, channel: str) -> None:
        app, msisdn = self.app, number(ni)
        sid = self.subscribers[pi] if pi < len(self.subscribers) else None
        try:
            if op == "register" or (sid is None and op == "verify"):
                r = execute(
                    app,
                    RegisterSubscriber(
                        full_name=f"P{pi}", id_type="RESIDENT_ID_CARD", id_number=resident_id(pi), date_of_birth=""
                    ),
                    request_id=self.rid(),
                    actor="t",
                )
                self.subscribers.append(UUID(r.data["subscriber_id"]))
            elif sid is None and op in ("activate", "erase"):
                return
            elif op == "verify":
                execute(
                    app,
                    VerifyIdentity(
                        subscriber_id=sid,
                        method="ID_CARD_READER",
                        channel=channel,
                        agent_id=f"{channel}-{pi % 2}",
                        evidence_ref="e",
                    ),
                    request_id=self.rid(),
                    actor="t",
                )
            elif op == "activate":
                iccid = new_iccid()
                execute(
                    app,
                    ActivateSim(
                        number=msisdn,
                        subscriber_id=sid,
                        iccid=iccid,
                        imsi=imsi_for(iccid),
                        channel=channel,
                        agent_id=f"{channel}-{pi % 2}",
                    ),
                    request_id=self.rid(),
                    actor="t",
                )
            elif op == "suspend":
                execute(app, SuspendNumber(number=msisdn, reason=reason, note=""), request_id=self.rid(), actor="t")
            elif op == "resume":
                execute(app, ResumeNumber(number=msisdn, note=""), request_id=self.rid(), actor="t")
            elif op == "swap":
                iccid = new_iccid()
                execute(
                    app,
                    SwapSim(
                        number=msisdn,
                        new_iccid=iccid,
                        new_imsi=imsi_for(iccid),
                        reason="DAMAGED",
                        channel=channel,
                        agent_id="a",
                    ),
                    request_id=self.rid(),
                    actor="t",
                )
            elif op == "disconnect":
                execute(
                    app,
                    DisconnectNumber(number=msisdn, reason="FRAUD" if reason == "FRAUD" else "SUBSCRIBER_REQUEST"),
                    request_id=self.rid(),
                    actor="t",
                )
            elif op == "confirm":
                closed = app.get_number(msisdn).closed_tenures()
                if closed:
                    holder = ("crm", "billing", "voicemail")[pi % 3]
                    execute(
                        app,
                        ConfirmDataCleared(
                            number=msisdn, tenure_id=closed[-1].tenure_id, holder=holder, evidence_ref="x"
                        ),
                        request_id=self.rid(),
                        actor="t",
                    )
            elif op in ("release", "override"):
                execute(
                    app,
                    ReleaseNumber(number=msisdn, override_reason="ops" if op == "override" else ""),
                    request_id=self.rid(),
                    actor="t",
                )
            elif op == "erase":
                execute(
                    app, EraseSubscriberData(subscriber_id=sid, legal_basis="PIPL"), request_id=self.rid(), actor="t"
                )
            elif op == "port_out":
                execute(
                    app, PortOutNumber(number=msisdn, recipient_operator=f"mno-{pi}"), request_id=self.rid(), actor="t"
                )
            elif op == "port_in":  # the first person's turn takes in a number new to the ledger
                target = number(N_NUMBERS) if pi == 0 else msisdn
                execute(app, PortInNumber(number=target, donor_operator=f"mno-{pi}"), request_id=self.rid(), actor="t")
            elif op == "return":
                since = timedelta(days=pi * 3)
                execute(
                    app,
                    ReturnNumber(number=msisdn, disconnected_at=self.clock.now() - since),
                    request_id=self.rid(),
                    actor="t",
                )
            elif op == "erase_due":
                # Held erasures (a retention period in the policy) complete once it has ended.
                erase_due(app, "t")
            elif op == "wait":
                self.clock.advance(days=31 + pi * 10)
                if pi % 2:
                    erase_due(app, "daily pass")  # as the server's daily pass would, now and then
        except LedgerError:
            pass


def tables(db: str) -> dict[str, list[str]]:
    conn = sqlite3.connect(db)
    try:
        return vt.dump(conn)
    finally:
        conn.close()


def expected_from_replay(app: LedgerApplication) -> dict:
    """What the read models must say, computed from aggregates and their events, not from the views."""
    numbers, tenures, swaps, checks, monitored = {}, {}, {}, {}, {}
    agents: Counter = Counter()
    subscribers: dict[str, dict] = {}
    for i in range(N_NUMBERS + 1):  # the one past the range only enters by a port-in
        try:
            num = app.get_number(number(i))
        except NumberNotFound:
            continue
        current = num.current_tenure
        numbers[num.number] = (
            str(num.status),
            current.subscriber_id.hex if current else None,
            len(num.tenures),
            num.suspension_reason,
        )
        for t in num.tenures:
            tenures[t.tenure_id.hex] = (
                t.subscriber_id.hex,
                t.iccid,
                us(t.activated_at),
                us(t.disconnected_at) if t.disconnected_at else None,
                us(t.quarantine_until) if t.quarantine_until else None,
                t.outstanding_holders if t.disconnected_at else [],
                sorted(t.confirmations),
                us(t.released_at) if t.released_at else None,
                int(t.violation),
            )
            agents[(t.channel, t.agent_id, "activations")] += 1
        events = list(app.repository.event_store.get(num.id))
        starts = [e.occurred_at for e in events if isinstance(e, (Number.Provisioned, Number.PortedIn))]
        ends = [t.disconnected_at for t in num.tenures if t.disconnected_at and not t.ported_to] + [
            t.recipient_disconnected_at for t in num.tenures if t.recipient_disconnected_at
        ]
        checks[num.number] = (
            us(starts[-1]),
            us(current.activated_at) if current else None,
            us(max(ends)) if ends else None,
            us(num.ported_out_at) if num.ported_out_at else None,
        )
        monitored[num.number] = (
            us(starts[-1]),
            us(num.tenures[-1].activated_at) if num.tenures else None,
            us(num.ported_out_at) if num.ported_out_at else None,
        )
        swapped = [e for e in events if isinstance(e, Number.SimSwapped)]
        if swapped:
            swaps[num.number] = (swapped[-1].new_iccid, swapped[-1].old_iccid, len(swapped))
        flagged: set[UUID] = set()
        open_tenure = None
        for e in events:
            if isinstance(e, Number.Activated):
                open_tenure = e
            elif (
                open_tenure is not None
                and open_tenure.tenure_id not in flagged
                and (
                    (isinstance(e, Number.Suspended) and e.reason in VIOLATION_SUSPENSIONS)
                    or (isinstance(e, Number.Disconnected) and e.reason in VIOLATION_DISCONNECTIONS)
                )
            ):
                flagged.add(open_tenure.tenure_id)
                agents[(open_tenure.channel, open_tenure.agent_id, "violations")] += 1
            if isinstance(e, (Number.Disconnected, Number.PortedOut)):
                open_tenure = None
        for t in num.tenures:
            s = subscribers.setdefault(t.subscriber_id.hex, {"open": 0, "last_end": None})
            if t.is_open:
                s["open"] += 1
            elif s["last_end"] is None or us(t.disconnected_at) > s["last_end"]:
                s["last_end"] = us(t.disconnected_at)
    erasure = {}
    for notification in app.recorder.select_notifications(start=1, limit=10**6):
        if notification.topic.endswith("Subscriber.Registered"):
            sub = app.get_subscriber(notification.originator_id)
            for v in sub.verifications:
                agents[(v.channel, v.agent_id, "verifications")] += 1
            s = subscribers.get(sub.id.hex, {"open": 0, "last_end": None})
            erasure[sub.id.hex] = (
                s["open"],
                s["last_end"],
                us(sub.erased_at) if sub.erased_at else None,
                us(sub.verified_at()) if sub.verified_at() else None,
            )
    return {
        "numbers": numbers,
        "tenures": tenures,
        "swaps": swaps,
        "agents": +agents,
        "erasure": erasure,
        "checks": checks,
        "monitored": monitored,
    }


def actual_from_views(db: str | Any) -> dict:
    """The read models' rows; ``db`` is an SQLite views file or an open PostgreSQL connection."""
    raw = sqlite3.connect(db) if isinstance(db, str) else db
    conn = vt.serving(raw)
    import orjson

    try:
        numbers = {
            r[0]: (r[1], r[2], r[3], r[4])
            for r in conn.execute(
                "SELECT number, status, subscriber_id, tenure_count, suspension_reason FROM rm_numbers"
            )
        }
        tenures = {
            r[0]: (
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                orjson.loads(r[6]) if r[6] else [],
                sorted(c[0] for c in orjson.loads(r[7])) if r[7] else [],
                r[8],
                r[9],
            )
            for r in conn.execute(
                "SELECT tenure_id, subscriber_id, iccid, activated_us, disconnected_us, quarantine_until_us, "
                "outstanding_holders, confirmations, released_us, violation FROM rm_tenures"
            )
        }
        swaps = {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute("SELECT number, new_iccid, old_iccid, swap_count FROM rm_sim_swaps")
        }
        agents: Counter = Counter()
        for ch, ag, v, a, x in conn.execute(
            "SELECT channel, agent_id, verifications, activations, violations FROM rm_cmp_agents"
        ):
            agents[(ch, ag, "verifications")] += v
            agents[(ch, ag, "activations")] += a
            agents[(ch, ag, "violations")] += x
        verified = dict(conn.execute("SELECT subscriber_id, verified_us FROM rm_cmp_subscribers").fetchall())
        erasure = {
            r[0]: (r[1], r[2], r[3], verified.get(r[0]))
            for r in conn.execute("SELECT subscriber_id, open_tenures, last_end_us, erased_us FROM rm_er_subscribers")
        }
        checks = {
            r[0]: (r[1], r[2], r[3], r[4])
            for r in conn.execute(
                "SELECT number, provisioned_us, current_activated_us, last_disconnected_us, ported_out_us "
                "FROM rm_checks"
            )
        }
        monitored = {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute("SELECT number, monitored_since_us, activated_us, ported_out_us FROM rm_swap_numbers")
        }
        return {
            "numbers": numbers,
            "tenures": tenures,
            "swaps": swaps,
            "agents": +agents,
            "erasure": erasure,
            "checks": checks,
            "monitored": monitored,
        }
    finally:
        if isinstance(db, str):
            raw.close()


def _normalise_expected(expected: dict) -> dict:
    # Confirmation holders are compared by name.
    expected["tenures"] = {k: (*v[:6], sorted(v[6]), *v[7:]) for k, v in expected["tenures"].items()}
    return expected


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=steps,
    crash_after=st.integers(1, 6),
    batch_size=st.integers(1, 9),
    retention=st.sampled_from([0, 45]),
)
def test_read_models_equal_a_replay_after_crash_and_rebuild(
    steps, crash_after: int, batch_size: int, retention: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            store=StoreConfig.from_url(f"sqlite:///{tmp}/ledger.db"),
            policy=Policy(quarantine_days=30, identity_retention_days=retention),
        )
        clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
        app = open_ledger(settings, clock)
        try:
            driver = Driver(app, clock)
            for step in steps:
                driver.step(*step)
            views_db = str(settings.store.views_path())

            # A projector that dies mid-stream: the batch in flight is rolled back.
            first = Projector(
                app.recorder, app.mapper, ViewsDatabase(sqlite_path=views_db), row_seal(app), batch_size=batch_size
            )
            for _ in range(crash_after):
                first.run_once()
            original = NumbersView.__dict__["apply"]  # the descriptor itself, not a bound dispatcher

            def dying(self, event, position, cur):
                raise RuntimeError("killed")

            NumbersView.apply = dying  # type: ignore[method-assign]
            try:
                with contextlib.suppress(RuntimeError):
                    first.run_once()
            finally:
                NumbersView.apply = original  # type: ignore[method-assign]
            first.close()

            # A new process picks up where the tracking says and catches up.
            second = open_projector(settings, app)
            second.catch_up()
            assert second.position == app.reader.max_position()
            expected = _normalise_expected(expected_from_replay(app))
            event(f"tenures: {min(len(expected['tenures']), 3)}+")
            event(f"closed tenures: {sum(1 for t in expected['tenures'].values() if t[3]) > 0}")
            held = [sid for sid in driver.subscribers if app.get_subscriber(sid).erasure_due_at is not None]
            event(f"held erasures: {len(held) > 0}; completed: {any(app.get_subscriber(s).is_erased for s in held)}")
            assert actual_from_views(views_db) == expected
            snapshot = tables(views_db)
            second.rebuild()
            assert tables(views_db) == snapshot
            second.close()
        finally:
            app.close()
            app.vault.store.close()


def test_property_harness_sees_real_activity(tmp_path: Path) -> None:
    """Guard against a vacuous property: a scripted run must produce tenures, swaps and violations."""
    settings = Settings(
        store=StoreConfig.from_url(f"sqlite:///{tmp_path}/ledger.db"),
        policy=Policy(quarantine_days=30, identity_retention_days=0),
    )
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    app = open_ledger(settings, clock)
    try:
        d = Driver(app, clock)
        script = [
            ("register", 0, 0, "FRAUD", "shop"),
            ("verify", 0, 0, "FRAUD", "shop"),
            ("activate", 0, 0, "FRAUD", "shop"),
            ("swap", 0, 0, "FRAUD", "shop"),
            ("suspend", 0, 0, "FRAUD", "shop"),
            ("disconnect", 0, 0, "FRAUD", "shop"),
            ("confirm", 0, 0, "FRAUD", "shop"),
            ("wait", 0, 0, "FRAUD", "shop"),
            ("override", 0, 0, "FRAUD", "shop"),
            ("erase", 0, 0, "FRAUD", "shop"),
            ("activate", 1, 1, "FRAUD", "web"),
            ("port_out", 1, 1, "FRAUD", "web"),
            ("wait", 1, 1, "FRAUD", "web"),
            ("return", 1, 1, "FRAUD", "web"),
            ("activate", 2, 2, "FRAUD", "web"),
            ("port_out", 2, 2, "FRAUD", "web"),
            ("port_in", 2, 2, "FRAUD", "web"),
            ("port_in", 0, 0, "FRAUD", "web"),
        ]
        for s in script:
            d.step(*s)
        projector = open_projector(settings, app)
        projector.catch_up()
        views = actual_from_views(str(settings.store.views_path()))
        assert views == _normalise_expected(expected_from_replay(app))
        assert views["swaps"] and views["agents"][("shop", "shop-0", "violations")] == 1
        assert any(t[8] == 1 for t in views["tenures"].values())  # the override left a violation
        assert views["erasure"][d.subscribers[0].hex][2] is not None
        assert views["checks"][number(1)][2] is not None  # the recipient's disconnection of the returned number
        assert views["checks"][number(2)][3] is None and number(N_NUMBERS) in views["checks"]  # ported back, in
        projector.close()
        _ = timedelta, Subscriber
    finally:
        app.close()
        app.vault.store.close()


def test_property_harness_sees_held_erasures_complete(tmp_path: Path) -> None:
    """Guard: with a retention period, an erasure is held, then completed by ``erase_due``, and the
    read models still equal the replay at each stage."""
    settings = Settings(
        store=StoreConfig.from_url(f"sqlite:///{tmp_path}/ledger.db"),
        policy=Policy(quarantine_days=30, identity_retention_days=45),
    )
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    app = open_ledger(settings, clock)
    try:
        d = Driver(app, clock)
        for s in [
            ("activate", 0, 0, "FRAUD", "shop"),
            ("disconnect", 0, 0, "FRAUD", "shop"),
            ("erase", 0, 0, "F", "shop"),
        ]:
            d.step(*s)
        sid = d.subscribers[0]
        projector = open_projector(settings, app)
        projector.catch_up()
        assert app.get_subscriber(sid).is_restricted
        assert actual_from_views(str(settings.store.views_path())) == _normalise_expected(expected_from_replay(app))
        for s in [("wait", 0, 2, "FRAUD", "shop"), ("erase_due", 0, 0, "FRAUD", "shop")]:
            d.step(*s)
        projector.catch_up()
        assert app.get_subscriber(sid).is_erased
        views = actual_from_views(str(settings.store.views_path()))
        assert views == _normalise_expected(expected_from_replay(app))
        assert views["erasure"][sid.hex][2] is not None
        projector.close()
    finally:
        app.close()
        app.vault.store.close()


def closed_summaries(conn: Any) -> tuple[dict, dict]:
    """rm_checks' closed-tenure summaries, and the same derived from rm_tenures (which the property
    compares with the replay): they must be equal."""
    import orjson

    from ledger.domain.rules import Clearance

    conn = vt.serving(conn)
    stored = {n: orjson.loads(c) for n, c in conn.execute("SELECT number, closed FROM rm_checks")}
    derived: dict[str, list] = {n: [] for n in stored}
    for n, end, out, violation in conn.execute(
        "SELECT n.number, t.disconnected_us, t.outstanding_holders, t.violation FROM rm_tenures t "
        "JOIN rm_numbers n ON n.number_id = t.number_id WHERE t.disconnected_us IS NOT NULL "
        "ORDER BY n.number, t.ordinal"
    ):
        outstanding = orjson.loads(out or "[]")
        clearance = Clearance.VIOLATION if violation else Clearance.PENDING if outstanding else Clearance.CLEARED
        derived[n].append([end, clearance.value, outstanding])
    return stored, derived


def random_settings(url: str) -> Settings:
    """The settings of the random runs' stores."""
    return Settings(
        store=StoreConfig.from_url(url),
        policy=Policy(quarantine_days=30, identity_retention_days=0),
        master_key_text=TEST_MASTER_KEY,
    )


def random_steps(driver: Driver, count: int = 600) -> None:
    """The same random steps each time (600: about 270 events, many recycled numbers)."""
    pick = random.Random(1)
    recycling_ops = [op for op in OPS if op not in PORTING_OPS]  # many recycled numbers (ports have their own)
    for _ in range(count):
        driver.step(
            pick.choice(recycling_ops),
            pick.randrange(N_NUMBERS),
            pick.randrange(N_PEOPLE),
            pick.choice(["FRAUD", "SPAM", "LOST_SIM", "NON_PAYMENT"]),
            pick.choice(["shop", "web"]),
        )


def random_run(url: str) -> tuple[Settings, LedgerApplication]:
    """A store at ``url`` after the same 600 random steps each time (about 270 events, many recycled
    numbers)."""
    settings = random_settings(url)
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    app = open_ledger(settings, clock)
    random_steps(Driver(app, clock))
    return settings, app


@pytest.mark.parametrize(
    ("store", "mode"),
    [
        ("postgres", "one batch"),
        ("postgres", "batches of 13"),
        ("postgres", "two projectors"),
        ("sqlite", "two projectors"),
    ],
)
def test_read_models_equal_a_replay_in_one_batch_small_batches_and_two_projectors(
    pg_admin_url, tmp_path: Path, store: str, mode: str
) -> None:
    """A long random run (many recycled numbers) projected in one batch, in small ones, or by two projectors
    taking turns, equals the replay, also after a rebuild. In one batch, handlers read rows that writes of
    the same batch just changed (on PostgreSQL the writes are held back and sent together); the numbers
    view remembers closed tenures between batches, which is right only while no other projector wrote."""
    import psycopg

    from tests.pgserver import new_database

    url = new_database(pg_admin_url) if store == "postgres" else f"sqlite:///{tmp_path}/ledger.db"
    settings, app = random_run(url)
    try:
        projector = open_projector(settings, app)
        other = open_projector(settings, app)
        projector.batch_size = other.batch_size = 13 if mode != "one batch" else 1_000_000
        if mode == "two projectors":
            while projector.run_once() + other.run_once() + projector.run_once():  # uneven turns
                pass
        projector.catch_up()
        assert projector.position == app.reader.max_position()
        expected = _normalise_expected(expected_from_replay(app))
        closed = sum(1 for t in expected["tenures"].values() if t[3])
        assert closed >= 10, closed  # many closed tenures
        if store == "postgres":
            conn: Any = psycopg.connect(url, autocommit=True)
            conn.execute('SET search_path TO "ledger_views"')
        else:
            conn = sqlite3.connect(settings.store.views_path())
        try:
            assert actual_from_views(conn) == expected
            stored, derived = closed_summaries(conn)
            assert stored == derived and sum(len(v) for v in stored.values()) == closed
            projector.rebuild()
            assert actual_from_views(conn) == expected
            assert closed_summaries(conn)[0] == stored
        finally:
            conn.close()
        projector.close()
        other.close()
    finally:
        app.close()
        app.vault.store.close()


def test_postgres_held_write_that_fails_rolls_the_batch_back(pg_admin_url) -> None:
    """A write held back that fails when it is sent makes the batch fail and roll back whole (the handlers
    after it already ran); the projector then goes on from where its tracking says and ends equal to the
    replay. The views serve (they are written event by event, not built in memory)."""
    import psycopg

    from tests.pgserver import new_database

    url = new_database(pg_admin_url)
    settings = random_settings(url)
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    app = open_ledger(settings, clock)
    try:
        driver = Driver(app, clock)
        projector = open_projector(settings, app)
        projector.catch_up()  # the views serve from here on
        served = projector.position
        random_steps(driver)
        projector.batch_size = 1_000_000
        original = NumbersView.__dict__["apply"]
        seen = [0]

        def failing(self, event, position, cur):
            seen[0] += 1
            if seen[0] == 30:
                cur.execute("INSERT INTO rm_numbers (number_id) VALUES (?)", ("broken",))  # NOT NULL violated
            return original.__get__(self, type(self))(event, position, cur)

        NumbersView.apply = failing  # type: ignore[method-assign]
        try:
            with pytest.raises(psycopg.errors.NotNullViolation):
                projector.run_once()
            assert seen[0] > 30  # the batch went on after the failing write was held back
        finally:
            NumbersView.apply = original  # type: ignore[method-assign]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute('SET search_path TO "ledger_views"')
            assert vt.serving(conn).execute(
                "SELECT count(*) FROM rm_numbers WHERE status <> 'AVAILABLE'"
            ).fetchone() == (0,)
            assert {p for (p,) in conn.execute("SELECT position FROM rm_generations")} == {served}
            projector.catch_up()
            assert actual_from_views(conn) == _normalise_expected(expected_from_replay(app))
        projector.close()
    finally:
        app.close()
        app.vault.store.close()


@pytest.mark.parametrize("ops", ["recycling", "every command"])
@pytest.mark.parametrize("store", ["postgres", "sqlite"])
def test_rebuild_writes_the_views_the_live_projector_wrote(pg_admin_url, tmp_path: Path, store: str, ops: str) -> None:
    """The views a projector wrote while following the ledger (a few commands per batch, as a server's
    projector does) equal, row for row and column for column (seals included), the views a rebuild then
    writes from position 0 in large batches (on PostgreSQL built in memory, each table read and written
    once per batch), and the replay: with many recycled numbers, or with every command (ports, returns,
    erasures held for a retention period and completed)."""
    import psycopg

    from tests.pgserver import new_database

    url = new_database(pg_admin_url) if store == "postgres" else f"sqlite:///{tmp_path}/ledger.db"
    settings = Settings(
        store=StoreConfig.from_url(url),
        policy=Policy(quarantine_days=30, identity_retention_days=0 if ops == "recycling" else 45),
        master_key_text=TEST_MASTER_KEY,
    )
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    app = open_ledger(settings, clock)
    try:
        projector = open_projector(settings, app)
        driver = Driver(app, clock)
        pick = random.Random(1)
        chosen = [op for op in OPS if op not in PORTING_OPS] if ops == "recycling" else [*OPS, "erase_due"]
        for k in range(700):
            driver.step(
                pick.choice(chosen),
                pick.randrange(N_NUMBERS),
                pick.randrange(N_PEOPLE),
                pick.choice(["FRAUD", "SPAM", "LOST_SIM", "NON_PAYMENT"]),
                pick.choice(["shop", "web"]),
            )
            if k % pick.randint(1, 4) == 0:
                projector.catch_up()
        projector.catch_up()
        if store == "postgres":
            conn: Any = psycopg.connect(url, autocommit=True)
            conn.execute('SET search_path TO "ledger_views"')
        else:
            conn = sqlite3.connect(settings.store.views_path(), isolation_level=None)
        try:
            live = vt.dump(conn)
            sizes = {table: len(rows) for table, rows in live.items()}
            assert sizes["rm_tenures"] >= 5 and sizes["rm_sim_swaps"] >= 1 and sizes["rm_cmp_verifications"] >= 5, sizes
            assert all(not row.endswith("None)") for row in live["rm_checks"] + live["rm_tenures"])  # all sealed
            if ops != "recycling":
                assert any("PORTED_OUT" in row for row in live["rm_tenures"]), "no port in the run"
            generation = conn.execute("SELECT max(generation) FROM rm_generations").fetchone()[0]
            projector.batch_size = 100_000
            projector.rebuild()
            assert conn.execute("SELECT max(generation) FROM rm_generations").fetchone()[0] > generation
            assert vt.dump(conn) == live
            assert actual_from_views(conn) == _normalise_expected(expected_from_replay(app))
        finally:
            conn.close()
        projector.close()
    finally:
        app.close()
        app.vault.store.close()


@contextlib.contextmanager
def sent_to_postgres() -> Iterator[list[list[str]]]:
    """What projectors send to PostgreSQL meanwhile, in order, a list per transaction."""
    from projections import db as views_db

    transactions: list[list[str]] = [[]]
    original = views_db._PgCursor.execute

    def recording(self, sql, params=()):  # type: ignore[no-untyped-def]
        transactions[-1].append(sql)
        if sql in ("COMMIT", "ROLLBACK"):
            transactions.append([])
        return original(self, sql, params)

    views_db._PgCursor.execute = recording  # type: ignore[method-assign]
    try:
        yield transactions
    finally:
        views_db._PgCursor.execute = original  # type: ignore[method-assign]


def test_postgres_rebuild_commits_asynchronously_until_the_switch(pg_admin_url) -> None:
    """Batches that only fill a generation being built commit without waiting for the disk (a crash
    loses at most a suffix of them, and the rebuild resumes from the last durable position); the batch
    that makes the new generation serve waits for its commit to be durable, and so for every one before."""
    from tests.pgserver import new_database

    settings, app = random_run(new_database(pg_admin_url))
    try:
        projector = open_projector(settings, app)
        projector.catch_up()
        projector.batch_size = 40
        with sent_to_postgres() as transactions:
            projector.rebuild()
        asynchronous = ["SET LOCAL synchronous_commit TO OFF" in t for t in transactions if t]
        switch = [k for k, t in enumerate(t for t in transactions if t) if any("state=?" in s for s in t)]
        assert len(asynchronous) > 3 and asynchronous[1:-1].count(True) >= 3, asynchronous
        assert switch and not any(asynchronous[k] for k in switch), (switch, asynchronous)
        projector.close()
    finally:
        app.close()
        app.vault.store.close()


def test_postgres_rebuild_writes_each_table_once_per_batch(pg_admin_url) -> None:
    """A batch that fills a generation being built on PostgreSQL sends a few statements per table (its rows
    read once, written once), not one or more per event: the server parsed, planned and ran every event's
    write, which bound the rebuild."""
    from tests.pgserver import new_database

    settings, app = random_run(new_database(pg_admin_url))
    try:
        projector = open_projector(settings, app)
        projector.catch_up()
        live = _dump_pg(settings)
        projector.batch_size = 100_000
        with sent_to_postgres() as transactions:
            projector.rebuild()
        batch = max(transactions, key=len)
        tables = {t for view in projector.views for t in view.tables}
        statements = [s for s in batch if any(t in s for t in tables)]
        assert app.reader.max_position() > 250
        assert len(statements) <= 4 * len(tables), Counter(s[:60] for s in statements).most_common(5)
        assert _dump_pg(settings) == live
        projector.close()
    finally:
        app.close()
        app.vault.store.close()


def test_postgres_rebuild_interrupted_while_writing_a_batch_resumes(pg_admin_url) -> None:
    """A rebuild that dies while a batch writes its tables (some written, others not) leaves nothing of that
    batch; a rebuilder started afterwards resumes the generation and writes the views the live projector
    wrote, row for row (seals included)."""
    from projections import building
    from tests.pgserver import new_database

    settings, app = random_run(new_database(pg_admin_url))
    try:
        projector = open_projector(settings, app)
        projector.catch_up()
        live = _dump_pg(settings)
        projector.close()
        dying = open_projector(settings, app)
        dying.batch_size = 60
        original = building._write
        calls = [0]

        def write(*args: Any) -> None:
            calls[0] += 1
            if calls[0] == 40:  # the fourth batch, after some of its tables (twelve a batch)
                raise RuntimeError("killed")
            original(*args)

        building._write = write  # type: ignore[assignment]
        try:
            with pytest.raises(RuntimeError):
                dying.rebuild()
        finally:
            building._write = original  # type: ignore[assignment]
        dying.close()
        resumed = open_projector(settings, app)
        resumed.batch_size = 60
        assert resumed.rebuild() < app.reader.max_position()  # resumed, not started again
        assert _dump_pg(settings) == live
        resumed.close()
    finally:
        app.close()
        app.vault.store.close()


def _dump_pg(settings: Settings) -> dict:
    import psycopg

    with psycopg.connect(settings.store.conninfo(), autocommit=True) as conn:
        conn.execute('SET search_path TO "ledger_views"')
        return vt.dump(conn)


def test_postgres_held_writes_keep_every_value(pg_admin_url) -> None:
    """Held writes are bound on this side into one text: quotes, backslashes, a semicolon, a
    placeholder-like text, non-ASCII text, negative and large integers and NULL arrive as they were."""
    from projections.db import PostgresViewsConnection
    from tests.pgserver import new_database

    conn = PostgresViewsConnection(new_database(pg_admin_url), "ledger_views")
    try:
        conn.execute("CREATE TABLE rm_values (k BIGINT PRIMARY KEY, t TEXT, n BIGINT)")
        values = [
            (1, "O'Brien \\ 'x'; DROP TABLE rm_values; --", -5),
            (2, "%s ? $1 \\x00 ''", 2**62),
            (3, None, None),
            (4, "Zoë 张伟 \U0001f600", 0),
        ]
        cur = conn.cursor()
        assert cur._plain  # type: ignore[attr-defined]  # bound here, not by psycopg
        cur.execute("BEGIN")
        for k, t, n in values:
            assert cur.execute("INSERT INTO rm_values (k, t, n) VALUES (?, ?, ?)", (k, t, n)) is None  # held
        cur.execute("UPDATE rm_values SET n=n-? WHERE k=?", (-1, 1))
        cur.execute("COMMIT")
        found = conn.execute("SELECT k, t, n FROM rm_values ORDER BY k").fetchall()
        assert found == [(1, values[0][1], -4), *values[1:]]
    finally:
        conn.close()


def test_postgres_rows_built_in_memory_keep_every_value(pg_admin_url) -> None:
    """Rows written with COPY's text format arrive as they were: backslashes, tabs, newlines, carriage
    returns, quotes, a semicolon, non-ASCII text, negative and large integers and NULL."""
    from projections.building import _text
    from projections.db import PostgresViewsConnection
    from tests.pgserver import new_database

    conn = PostgresViewsConnection(new_database(pg_admin_url), "ledger_views")
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE rm_values (k TEXT PRIMARY KEY, t TEXT, n BIGINT)")
        rows = [
            {"k": "a", "t": "back\\slash \\N \\t", "n": -(2**62)},
            {"k": "b", "t": "tab\tnew\nline\rreturn", "n": 2**62},
            {"k": "c", "t": 'it\'s; "q" ünï €', "n": 0},
            {"k": "d", "t": None, "n": None},
            {"k": "e", "t": "", "n": 7},
        ]
        cur.copy("COPY rm_values (k, t, n) FROM STDIN", _text(("k", "t", "n"), rows))  # type: ignore[attr-defined]
        found = cur.execute("SELECT k, t, n FROM rm_values ORDER BY k").fetchall()
        assert found == [(r["k"], r["t"], r["n"]) for r in rows]
    finally:
        conn.close()


def test_postgres_held_writes_run_without_holding_the_other_threads(pg_admin_url) -> None:
    """While the server runs the held writes, the projector's thread waits for its answer without the
    interpreter lock: the server's other threads (its RPCs) keep running."""
    from projections.db import PostgresViewsConnection
    from tests.pgserver import new_database

    conn = PostgresViewsConnection(new_database(pg_admin_url), "ledger_views")
    gaps: list[float] = []
    done = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    try:
        conn.execute("CREATE TABLE rm_slow (k BIGINT)")
        cur = conn.cursor()
        cur.execute("BEGIN")
        assert cur.execute("INSERT INTO rm_slow SELECT 1 FROM pg_sleep(0.8)") is None  # held
        ticker = threading.Thread(target=tick)
        ticker.start()
        time.sleep(0.05)
        started = time.perf_counter()
        cur.execute("COMMIT")  # sends the held write, waits for its answer, commits
        waited = time.perf_counter() - started
        done.set()
        ticker.join()
        assert waited >= 0.8
        assert max(gaps) < 0.4, max(gaps)  # held the lock, the ticker would have stopped for 0.8 s
        assert conn.execute("SELECT count(*) FROM rm_slow").fetchall() == [(1,)]
    finally:
        done.set()
        conn.close()
