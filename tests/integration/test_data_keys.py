"""A registration's data key is stored before anything is sealed under it, whatever races or fails, and a
registration left without one is found; through the application on both stores.

Identical concurrent registrations (one request id, one content) converge on one stored key; a key store
that fails makes the command fail and leaves nothing behind that a retry could seal under; every
acknowledged registration's personal data opens after the ledger is opened again (no cached key); a
deleted key is reported by the verification and the offline verifier. On the wire (the server's refusal
without the store's message, VerifyIntegrity's keyless registrations, the log at start):
tests/e2e/test_data_keys.py."""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from uuid import UUID

import psycopg
import pytest

from ledger.application import LedgerApplication
from ledger.application.commands import (
    ActivateSim,
    EraseSubscriberData,
    ProvisionNumbers,
    RegisterSubscriber,
    VerifyIdentity,
)
from ledger.application.pipeline import execute
from ledger.application.reads import number_history
from ledger.application.verification import keyless_registrations, verify_integrity, with_keyless
from ledger.bootstrap import open_ledger
from ledger.config import Settings
from scripts import verify_ledger
from tests.conftest import FakeClock, imsi_for, new_iccid, number, resident_id
from tests.integration.test_offline_tools import url_of

FAULT = "injected key store fault"


@contextmanager
def ledger(settings: Settings, clock: FakeClock) -> Iterator[LedgerApplication]:
    """The application opened afresh (no key in any cache), closed after."""
    app = open_ledger(settings, clock)
    try:
        yield app
    finally:
        app.close()
        app.vault.store.close()


def register(app: LedgerApplication, request_id: str, seq: int) -> tuple[str, int]:
    """(subscriber id, position) of a registration of "Keyed Person ``seq``"."""
    result = execute(
        app,
        RegisterSubscriber(
            full_name=f"Keyed Person {seq}", id_type="RESIDENT_ID_CARD", id_number=resident_id(seq), date_of_birth=""
        ),
        request_id=request_id,
        actor="t",
    )
    return str(result.data["subscriber_id"]), result.position


def activate(app: LedgerApplication, msisdn: str, sid: str) -> None:
    """Verify the subscriber and give them ``msisdn``, so the number's history shows their data."""
    subscriber = UUID(sid)
    execute(app, ProvisionNumbers(numbers=[msisdn]), request_id=f"p-{msisdn}", actor="t")
    verify = VerifyIdentity(
        subscriber_id=subscriber, method="ID_CARD_READER", channel="retail", agent_id="a1", evidence_ref="ev"
    )
    execute(app, verify, request_id=f"v-{sid}", actor="t")
    iccid = new_iccid()
    activation = ActivateSim(
        number=msisdn, subscriber_id=subscriber, iccid=iccid, imsi=imsi_for(iccid), channel="retail", agent_id="a1"
    )
    execute(app, activation, request_id=f"a-{sid}", actor="t")


def disclosed_names(app: LedgerApplication, msisdn: str) -> list[tuple[str, str]]:
    """(personal data state, full name) of each registration in the number's history."""
    items = number_history(app, msisdn, True, "auditor", "key audit")
    return [
        (i.personal_state, (i.personal_data or {}).get("full_name", ""))
        for i in items
        if i.type_name == "SubscriberRegistered"
    ]


def opens(app: LedgerApplication, sid: str, full_name: str) -> bool:
    """Whether the subscriber's sealed personal data opens with the stored key."""
    subscriber = app.get_subscriber(UUID(sid))
    data = app.vault.open(subscriber.id, subscriber.personal_data)
    return data is not None and data["full_name"] == full_name


def test_identical_concurrent_registrations_converge_on_one_stored_key(store_settings: Settings, clock) -> None:
    rounds, callers = 40, 16
    registered: list[tuple[str, int]] = []
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switching threads often makes the callers' steps interleave finely
    try:
        with ledger(store_settings, clock) as app:
            for r in range(rounds):
                seq = 300 + r
                barrier = threading.Barrier(callers)

                def call(_: int, seq: int = seq, barrier: threading.Barrier = barrier) -> tuple[str, int]:
                    barrier.wait()
                    return register(app, f"same-{seq}", seq)

                with ThreadPoolExecutor(callers) as pool:
                    answers = set(pool.map(call, range(callers)))
                assert len(answers) == 1, answers  # one registration, answered alike to every caller
                registered.append((answers.pop()[0], seq))
            for sid, seq in registered:
                activate(app, number(seq), sid)
    finally:
        sys.setswitchinterval(previous)
    with ledger(store_settings, clock) as app:
        for sid, seq in registered:
            assert disclosed_names(app, number(seq)) == [("DISCLOSED", f"Keyed Person {seq}")], sid


def break_key_store(settings: Settings) -> None:
    """Make every insert of a data key fail (a trigger in the key store's own database)."""
    if settings.store.kind == "sqlite":
        with sqlite3.connect(settings.store.key_store_path(), timeout=30) as conn:
            conn.execute(f"CREATE TRIGGER fault BEFORE INSERT ON data_keys BEGIN SELECT RAISE(ABORT, '{FAULT}'); END")
        return
    with psycopg.connect(settings.store.conninfo(), autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION ledger_keys.fault() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{FAULT}'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER fault BEFORE INSERT ON ledger_keys.data_keys "
            "FOR EACH ROW EXECUTE FUNCTION ledger_keys.fault()"
        )


def mend_key_store(settings: Settings) -> None:
    if settings.store.kind == "sqlite":
        with sqlite3.connect(settings.store.key_store_path(), timeout=30) as conn:
            conn.execute("DROP TRIGGER fault")
        return
    with psycopg.connect(settings.store.conninfo(), autocommit=True) as conn:
        conn.execute("DROP TRIGGER fault ON ledger_keys.data_keys")
        conn.execute("DROP FUNCTION ledger_keys.fault()")


def test_a_failing_key_store_leaves_nothing_a_retry_could_seal_under(store_settings: Settings, clock) -> None:
    acknowledged: dict[str, str] = {}
    with ledger(store_settings, clock) as app:
        register(app, "before", 400)  # the identity salts and the key store exist before the fault
        head = app.reader.max_position()
        break_key_store(store_settings)
        for seq in range(401, 406):
            with pytest.raises(Exception, match=FAULT):
                register(app, f"r-{seq}", seq)
        assert app.reader.max_position() == head  # nothing recorded
        mend_key_store(store_settings)
        with ThreadPoolExecutor(5) as pool:  # the clients retry, at once and together
            retried = list(pool.map(lambda seq: (seq, register(app, f"r-{seq}", seq)), range(401, 406)))
        for seq, (sid, _) in retried:
            acknowledged[sid] = f"Keyed Person {seq}"
    with ledger(store_settings, clock) as app:
        unopened = [sid for sid, name in acknowledged.items() if not opens(app, sid, name)]
        assert not unopened, f"{len(unopened)} acknowledged registration(s) do not open after a restart"


def delete_key_row(settings: Settings, sid: str) -> None:
    """Delete a data key behind the ledger's back (no tombstone)."""
    if settings.store.kind == "sqlite":
        with sqlite3.connect(settings.store.key_store_path(), timeout=30) as conn:
            assert conn.execute("DELETE FROM data_keys WHERE subscriber_id = ?", (sid,)).rowcount == 1
        return
    with psycopg.connect(settings.store.conninfo()) as pg:
        assert pg.execute("DELETE FROM ledger_keys.data_keys WHERE subscriber_id = %s", (UUID(sid),)).rowcount == 1


def test_a_registration_without_its_key_is_reported_online_and_offline(
    store_app: LedgerApplication, store_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = store_app
    kept, lost, erased = (register(app, f"k-{seq}", seq)[0] for seq in (500, 501, 502))
    position = app.reader.position_of(UUID(lost), 1)  # the registration's event
    execute(
        app, EraseSubscriberData(subscriber_id=UUID(erased), legal_basis="PIPL art. 47"), request_id="erase", actor="t"
    )

    def report():
        return with_keyless(verify_integrity(app, None), keyless_registrations(app.reader, app.vault.store))

    assert report().ok  # a tombstone is no loss
    delete_key_row(store_settings, lost)
    found = report()
    assert not found.ok and found.first_bad_position == position
    assert list(found.keyless_registrations) == [(position, lost)]
    assert "neither a stored data key nor a tombstone" in found.problem
    assert "Keyed Person" not in found.problem
    # The offline verifier reads the same from the stores.
    capsys.readouterr()
    assert verify_ledger.main(["--db", url_of(store_settings.store)]) == 1
    out = capsys.readouterr().out
    assert f"KEY LOST: the registration at position {position} (subscriber {lost})" in out
    assert kept not in out and erased not in out
