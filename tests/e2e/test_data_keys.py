"""A registration's data key is stored before anything is sealed under it, whatever races or fails, and a
registration left without one is found. Real servers on loopback, on both stores.

Identical concurrent registrations (one request id, one content) converge on one stored key; a key store
that fails makes the call fail and leaves nothing behind that a retry could seal under; every
acknowledged registration's personal data opens after a restart (a fresh process holds no cached key).
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import UUID

import grpc
import psycopg
import pytest

from ledger.config import Settings
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts import verify_ledger
from tests.conftest import FakeClock, Stubs, imsi_for, new_iccid, number, resident_id, running_server
from tests.procs import Serve

STORES = ("sqlite", "postgres")
FAULT = "injected key store fault"


def register(stubs: Stubs | Serve, request_id: str, seq: int) -> lpb.RegisterSubscriberResponse:
    return stubs.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(
            request_id=request_id, full_name=f"Keyed Person {seq}", id_type=1, id_number=resident_id(seq)
        ),
        timeout=60,
    )


def activate(stubs: Stubs, msisdn: str, sid: str) -> None:
    """Verify the subscriber and give them ``msisdn``, so the number's history shows their data."""
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=f"p-{msisdn}", numbers=[msisdn]))
    stubs.lifecycle.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id=f"v-{sid}", subscriber_id=sid, method=1, channel="retail", agent_id="a1", evidence_ref="ev"
        )
    )
    iccid = new_iccid()
    stubs.lifecycle.ActivateSim(
        lpb.ActivateSimRequest(
            request_id=f"a-{sid}",
            number=msisdn,
            subscriber_id=sid,
            iccid=iccid,
            imsi=imsi_for(iccid),
            channel="retail",
            agent_id="a1",
        )
    )


def disclosed_names(stubs: Stubs, msisdn: str) -> list[tuple[int, str]]:
    """(personal data state, full name) of each registration in the number's history."""
    request = hpb.GetNumberHistoryRequest(number=msisdn, include_personal_data=True, purpose="key audit")
    events = [r.event for r in stubs.history.GetNumberHistory(request, timeout=60)]
    return [(e.personal_data_state, e.personal_data.full_name) for e in events if e.type == "SubscriberRegistered"]


def opens(app, sid: str, full_name: str) -> bool:
    """Whether the subscriber's sealed personal data opens with the stored key (in a fresh process)."""
    subscriber = app.get_subscriber(UUID(sid))
    data = app.vault.open(subscriber.id, subscriber.personal_data)
    return data is not None and data["full_name"] == full_name


def test_identical_concurrent_registrations_converge_on_one_stored_key(settings: Settings, clock: FakeClock) -> None:
    rounds, callers = 40, 16
    # The server runs in this process: switching threads often makes the callers' steps interleave finely.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        _race(settings, clock, rounds, callers)
    finally:
        sys.setswitchinterval(previous)


def _race(settings: Settings, clock: FakeClock, rounds: int, callers: int) -> None:
    registered: list[tuple[str, int]] = []
    for stubs, _app in running_server(settings, clock):
        for r in range(rounds):
            seq = 300 + r
            barrier = threading.Barrier(callers)

            def call(
                _: int, seq: int = seq, barrier: threading.Barrier = barrier, stubs: Stubs = stubs
            ) -> tuple[str, int]:
                barrier.wait()
                answer = register(stubs, f"same-{seq}", seq)
                return answer.subscriber_id, answer.position

            with ThreadPoolExecutor(callers) as pool:
                answers = set(pool.map(call, range(callers)))
            assert len(answers) == 1, answers  # one registration, answered alike to every caller
            registered.append((answers.pop()[0], seq))
        for sid, seq in registered:
            activate(stubs, number(seq), sid)
    for stubs, _app in running_server(settings, clock):  # a restart: no key is left in any cache
        for sid, seq in registered:
            assert disclosed_names(stubs, number(seq)) == [
                (ledger_pb2.PERSONAL_DATA_STATE_DISCLOSED, f"Keyed Person {seq}")
            ], sid


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


def test_a_failing_key_store_leaves_nothing_a_retry_could_seal_under(settings: Settings, clock: FakeClock) -> None:
    acknowledged: dict[str, str] = {}
    for stubs, _app in running_server(settings, clock):
        register(stubs, "before", 400)  # the identity salts and the key store exist before the fault
        break_key_store(settings)
        failed = 0
        for seq in range(401, 406):
            try:
                register(stubs, f"r-{seq}", seq)
            except grpc.RpcError as e:
                failed += 1
                assert FAULT not in (e.details() or "")  # the store's message stays in the server's log
        assert failed == 5
        mend_key_store(settings)
        with ThreadPoolExecutor(5) as pool:  # the clients retry, at once and together
            retried = list(pool.map(lambda seq, s=stubs: (seq, register(s, f"r-{seq}", seq)), range(401, 406)))
        for seq, answer in retried:
            acknowledged[answer.subscriber_id] = f"Keyed Person {seq}"
    for _stubs, app in running_server(settings, clock):
        unopened = [sid for sid, name in acknowledged.items() if not opens(app, sid, name)]
        assert not unopened, f"{len(unopened)} acknowledged registration(s) do not open after a restart"


def store_url(settings: Settings) -> str:
    if settings.store.kind == "sqlite":
        return f"sqlite:///{settings.store.sqlite_path}"
    pg = settings.store.postgres
    return f"postgresql://{pg['user']}@{pg['host']}:{pg['port']}/{pg['dbname']}"


def registered_at(settings: Settings, sid: str) -> int:
    """The position of the subscriber's registration, read from the store."""
    if settings.store.kind == "sqlite":
        with sqlite3.connect(settings.store.sqlite_path, timeout=30) as conn:
            sql = "SELECT rowid FROM stored_events WHERE originator_id = ? AND originator_version = 1"
            return int(conn.execute(sql, (UUID(sid).hex,)).fetchone()[0])
    with psycopg.connect(settings.store.conninfo()) as pg:
        sql = "SELECT notification_id FROM ledger_events WHERE originator_id = %s AND originator_version = 1"
        return int(pg.execute(sql, (UUID(sid),)).fetchone()[0])


def delete_key_row(settings: Settings, sid: str) -> None:
    """Delete a data key behind the server's back (no tombstone)."""
    if settings.store.kind == "sqlite":
        with sqlite3.connect(settings.store.key_store_path(), timeout=30) as conn:
            assert conn.execute("DELETE FROM data_keys WHERE subscriber_id = ?", (sid,)).rowcount == 1
        return
    with psycopg.connect(settings.store.conninfo()) as pg:
        assert pg.execute("DELETE FROM ledger_keys.data_keys WHERE subscriber_id = %s", (UUID(sid),)).rowcount == 1


def test_a_registration_without_its_key_is_reported_by_verify_and_logged_at_start(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy]\nidentity_retention_days = 0\n")
    url, first_log, second_log = store_url(settings), tmp_path / "first.log", tmp_path / "second.log"
    srv = Serve(url, ("--policy", str(policy)), log=first_log)
    try:
        kept, lost, erased = (register(srv, f"k-{seq}", seq).subscriber_id for seq in (500, 501, 502))
        srv.lifecycle.EraseSubscriberData(
            lpb.EraseSubscriberDataRequest(request_id="erase", subscriber_id=erased, legal_basis="PIPL art. 47")
        )
        assert srv.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(), timeout=60).ok  # a tombstone is no loss
        delete_key_row(settings, lost)
        report = srv.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(), timeout=60)
        position = registered_at(settings, lost)
        assert not report.ok and report.first_bad_position == position
        assert [(k.position, k.subscriber_id) for k in report.keyless_registrations] == [(position, lost)]
        assert "neither a stored data key nor a tombstone" in report.problem
        # The offline verifier reads the same from the stores.
        assert verify_ledger.main(["--db", url]) == 1
        out = capsys.readouterr().out
        assert f"KEY LOST: the registration at position {position} (subscriber {lost})" in out
        assert kept not in out and erased not in out
        assert srv.stop() == 0
        srv = Serve(url, ("--policy", str(policy)), log=second_log)
        named = f"the registration at position {position} (subscriber {lost}) has neither a stored data key"
        deadline = time.monotonic() + 60
        while named not in second_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = second_log.read_text()
        assert named in text and kept not in text and erased not in text
        assert "Keyed Person" not in text and resident_id(501) not in text  # no personal data in the log
        assert srv.stop() == 0
    finally:
        srv.kill()
