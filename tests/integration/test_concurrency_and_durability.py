"""Concurrency, restarts and personal-data protection on a real SQLite file."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from ledger.application.commands import DisconnectNumber, EraseSubscriberData, ProvisionNumbers, RegisterSubscriber
from ledger.application.pipeline import execute
from ledger.bootstrap import open_ledger
from ledger.domain.number import Number
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import ledger_pb2
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import imsi_for, new_iccid, number, onboard_app, resident_id


def _events(stubs, msisdn: str) -> list:
    return [r.event for r in stubs.history.GetNumberHistory(hpb.GetNumberHistoryRequest(number=msisdn))]


def test_concurrent_suspend_resume_on_one_number_keeps_a_valid_history(server) -> None:
    stubs, _app = server
    msisdn = number(1)
    stubs.onboard(msisdn, seq=1)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(i: int) -> None:
        for j in range(15):
            rid = f"w{i}-{j}"
            try:
                if (i + j) % 2:
                    stubs.lifecycle.SuspendNumber(lpb.SuspendNumberRequest(request_id=rid, number=msisdn, reason=1))
                    kind = "suspended"
                else:
                    stubs.lifecycle.ResumeNumber(lpb.ResumeNumberRequest(request_id=rid, number=msisdn))
                    kind = "resumed"
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.details()
                kind = "refused"
            with lock:
                outcomes[kind] += 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(worker, range(16)))

    events = _events(stubs, msisdn)
    toggles = [e.type for e in events if e.type in ("NumberSuspended", "NumberResumed")]
    # Every acknowledged command is in the history exactly once, nothing else is.
    assert toggles.count("NumberSuspended") == outcomes["suspended"]
    assert toggles.count("NumberResumed") == outcomes["resumed"]
    # The state machine held: suspensions and resumptions strictly alternate.
    assert all(a != b for a, b in itertools.pairwise(toggles))
    assert not toggles or toggles[0] == "NumberSuspended"
    versions = [e.stream_version for e in events if e.stream_type == ledger_pb2.STREAM_TYPE_NUMBER]
    assert versions == list(range(1, len(versions) + 1))
    assert sum(outcomes.values()) == 16 * 15


def test_concurrent_activations_respect_the_identity_cap_and_sim_uniqueness(server) -> None:
    stubs, _ = server
    numbers = [number(200 + i) for i in range(12)]
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=numbers))
    sid = stubs.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(request_id="r", full_name="Race", id_type=1, id_number=resident_id(9))
    ).subscriber_id
    stubs.lifecycle.VerifyIdentity(
        lpb.VerifyIdentityRequest(
            request_id="v", subscriber_id=sid, method=1, channel="retail", agent_id="a", evidence_ref="e"
        )
    )
    shared_sim = new_iccid()

    def activate(i: int, iccid: str) -> str:
        try:
            stubs.lifecycle.ActivateSim(
                lpb.ActivateSimRequest(
                    request_id=f"a-{iccid}-{i}",
                    number=numbers[i],
                    subscriber_id=sid,
                    iccid=iccid,
                    imsi=imsi_for(iccid),
                    channel="retail",
                    agent_id="a",
                )
            )
            return "ok"
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.details()
            return e.details()

    # Six threads race for one SIM on six numbers: exactly one wins.
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: activate(i, shared_sim), range(6)))
    assert results.count("ok") == 1
    # Six more race on their own SIMs; the cap (5) lets exactly four more through.
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: activate(i, new_iccid()), range(6, 12)))
    assert results.count("ok") == 4
    held = [
        n
        for n in numbers
        if stubs.history.GetNumberState(hpb.GetNumberStateRequest(number=n)).number_state.subscriber_id
    ]
    assert len(held) == 5


def test_the_same_request_from_many_threads_is_recorded_once(server) -> None:
    stubs, _app = server
    msisdn = number(300)
    request = lpb.ProvisionNumbersRequest(request_id="one-and-only", numbers=[msisdn, number(301)])
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda _: stubs.lifecycle.ProvisionNumbers(request), range(24)))
    assert len({r.position for r in responses}) == 1
    assert {r.provisioned_count for r in responses} == {2}
    assert [e.type for e in _events(stubs, msisdn)] == ["NumberProvisioned"]


def test_restart_on_the_same_file_loses_nothing(settings, clock) -> None:
    app = open_ledger(settings, clock)
    execute(app, ProvisionNumbers(numbers=[number(1)]), request_id="p", actor="t")
    r = execute(
        app,
        RegisterSubscriber(full_name="Persist", id_type="PASSPORT", id_number="P1234567", date_of_birth=""),
        request_id="r",
        actor="t",
    )
    position = app.reader.max_position()
    app.close()
    app.vault.store.close()

    again = open_ledger(settings, clock)
    try:
        assert again.reader.max_position() == position
        assert again.get_number(number(1)).status == "AVAILABLE"
        sub = again.get_subscriber(__import__("uuid").UUID(r.data["subscriber_id"]))
        assert again.vault.open(sub.id, sub.personal_data) == {
            "full_name": "Persist",
            "id_type": "PASSPORT",
            "id_number": "P1234567",
            "date_of_birth": "",
        }
        # A retry after the restart still returns the first result.
        retry = execute(
            again,
            RegisterSubscriber(full_name="Persist", id_type="PASSPORT", id_number="P1234567", date_of_birth=""),
            request_id="r",
            actor="t",
        )
        assert retry.data == r.data and retry.position == r.position and retry.replayed
    finally:
        again.close()
        again.vault.store.close()


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def test_personal_data_never_reaches_the_files_and_erasure_destroys_the_key(server, settings) -> None:
    stubs, app = server
    folder = settings.store.sqlite_path.parent
    name, id_number = "Ouyang Xiaoming 欧阳晓明", resident_id(21)
    sid = stubs.lifecycle.RegisterSubscriber(
        lpb.RegisterSubscriberRequest(
            request_id="r", full_name=name, id_type=1, id_number=id_number, date_of_birth="1990-01-22"
        )
    ).subscriber_id
    wrapped_key = app.vault.store.get(__import__("uuid").UUID(sid))
    assert wrapped_key is not None
    secrets = [name.encode(), "欧阳晓明".encode(), id_number.encode(), b"1990-01-22", b"Ouyang"]
    blob = _all_bytes(folder)
    for secret in secrets:
        assert secret not in blob, secret
    assert wrapped_key in blob  # the key store really is in this folder

    stubs.lifecycle.EraseSubscriberData(
        lpb.EraseSubscriberDataRequest(request_id="e", subscriber_id=sid, legal_basis="GDPR art. 17")
    )
    blob = _all_bytes(folder)
    assert wrapped_key not in blob
    for secret in secrets:
        assert secret not in blob
    assert app.vault.store.get(__import__("uuid").UUID(sid)) is None

    # The erased subscriber's history still replays, personal fields reading as erased.
    msisdn = number(400)
    stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[msisdn]))
    sub = app.get_subscriber(__import__("uuid").UUID(sid))
    assert sub.is_erased
    assert app.vault.open(sub.id, sub.personal_data) is None


def test_erased_history_replays_after_restart(settings, clock) -> None:
    app = open_ledger(settings, clock)
    msisdn = number(5)
    sid = onboard_app(app, msisdn, 5)
    execute(app, DisconnectNumber(number=msisdn, reason="SUBSCRIBER_REQUEST"), request_id="d", actor="t")
    execute(app, EraseSubscriberData(subscriber_id=sid, legal_basis="PIPL"), request_id="e", actor="t")
    app.close()
    app.vault.store.close()

    from ledger.application.reads import number_history

    again = open_ledger(settings, clock)
    try:
        items = number_history(again, msisdn, include_personal_data=True)
        registered = [i for i in items if i.type_name == "SubscriberRegistered"]
        assert registered[0].personal_state == "ERASED" and registered[0].personal_data is None
        assert again.repository.get(Number.create_id(msisdn)).tenures[0].subscriber_id == sid
    finally:
        again.close()
        again.vault.store.close()


def test_an_erasure_interrupted_before_the_key_was_destroyed_is_finished_on_start(settings, clock) -> None:
    app = open_ledger(settings, clock)
    sid = __import__("uuid").UUID(
        execute(
            app,
            RegisterSubscriber(full_name="Half", id_type="PASSPORT", id_number="H1234567", date_of_birth=""),
            request_id="r",
            actor="t",
        ).data["subscriber_id"]
    )
    # Simulate a crash after the erasure event was saved but before the key was destroyed.
    app.vault.destroy = lambda _sid: None  # type: ignore[method-assign]
    execute(app, EraseSubscriberData(subscriber_id=sid, legal_basis="PIPL"), request_id="e", actor="t")
    assert app.vault.store.get(sid) is not None
    assert app.vault.store.pending_erasures() == [sid]
    app.close()
    app.vault.store.close()

    again = open_ledger(settings, clock)
    try:
        assert again.vault.store.get(sid) is None
        assert again.vault.store.pending_erasures() == []
    finally:
        again.close()
        again.vault.store.close()
