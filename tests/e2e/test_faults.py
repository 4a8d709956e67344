"""Faults on PostgreSQL, each bounded in time and on loopback: a server process killed under load, a
projection worker killed mid-catch-up, PostgreSQL restarted under load, and processes racing for the
same number and the same identity's cap."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import psycopg
import pytest

from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import history_service_pb2_grpc, lifecycle_service_pb2_grpc
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests import views as vt
from tests.conftest import imsi_for, new_iccid, number, resident_id
from tests.pgserver import new_database

ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "LEDGER_MASTER_KEY": MASTER_KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_stray_processes():
    """Whatever a test started is gone after it, pass or fail."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


class ServerProcess:
    """``python -m ledger serve`` on PostgreSQL, as its own process."""

    def __init__(self, db: str, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.db, self.port = db, port or free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger",
                "serve",
                "--db",
                db,
                "--listen",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "WARNING",
                *extra,
            ],
            env=ENV,
            stderr=subprocess.DEVNULL,
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=60)
        self.lifecycle = lifecycle_service_pb2_grpc.LifecycleServiceStub(self.channel)
        self.history = history_service_pb2_grpc.HistoryServiceStub(self.channel)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.channel.close()

    def stop(self) -> int:
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture
def db(pg_admin_url) -> str:
    return new_database(pg_admin_url)


def provisioned_counts(db: str) -> dict[str, int]:
    """How many times each number was provisioned, read straight from the store."""
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT convert_from(state, 'UTF8')::json->>'number', count(*) FROM ledger_events "
            "WHERE topic LIKE '%Number.Provisioned' GROUP BY 1"
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def load(servers: list[ServerProcess], stop: threading.Event, acked: list[str], lock: threading.Lock, start: int):
    """Provision one new number per call, round-robin over the servers; remember what was acknowledged."""
    i = start
    while not stop.is_set():
        server = servers[i % len(servers)]
        msisdn = number(i)
        try:
            server.lifecycle.ProvisionNumbers(
                lpb.ProvisionNumbersRequest(request_id=f"load-{i}", numbers=[msisdn]), timeout=5
            )
            with lock:
                acked.append(msisdn)
        except (grpc.RpcError, ValueError):
            pass  # not acknowledged: may or may not be recorded, never twice
        i += 4


def register_load(
    server: ServerProcess, stop: threading.Event, acked: dict[str, str], lock: threading.Lock, start: int
) -> None:
    """Register one new subscriber per call; a call that fails is retried (same request id, same content)
    until it is acknowledged, as a client does; remember what was acknowledged."""
    i = start
    while not stop.is_set():
        request = lpb.RegisterSubscriberRequest(
            request_id=f"reg-{i}", full_name=f"Loaded Person {i}", id_type=1, id_number=resident_id(i)
        )
        for _attempt in range(200):
            try:
                answer = server.lifecycle.RegisterSubscriber(request, timeout=5)
            except grpc.RpcError:
                time.sleep(0.05)  # a client's backoff before its retry
                continue
            with lock:
                acked[answer.subscriber_id] = request.full_name
            break
        i += 16


def unopened(db: str, acked: dict[str, str]) -> list[str]:
    """The acknowledged registrations whose personal data does not open in a fresh process."""
    from uuid import UUID

    from ledger.bootstrap import open_ledger
    from ledger.config import Settings, StoreConfig

    app = open_ledger(Settings(store=StoreConfig.from_url(db), master_key_text=MASTER_KEY))
    try:
        bad = []
        for sid, full_name in acked.items():
            subscriber = app.get_subscriber(UUID(sid))
            data = app.vault.open(subscriber.id, subscriber.personal_data)
            if data is None or data["full_name"] != full_name:
                bad.append(sid)
        return bad
    finally:
        app.close()
        app.vault.store.close()


def test_server_killed_under_load_loses_nothing_acknowledged(db) -> None:
    a, b = ServerProcess(db), ServerProcess(db)
    stop, lock, acked = threading.Event(), threading.Lock(), []
    threads = [threading.Thread(target=load, args=([a, b], stop, acked, lock, s)) for s in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    a.kill()
    time.sleep(1.0)
    restarted = ServerProcess(db, port=a.port)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    counts = provisioned_counts(db)
    assert len(acked) > 20
    assert all(counts.get(n) == 1 for n in acked), "an acknowledged command is missing"
    assert all(c == 1 for c in counts.values()), "a command was recorded twice"
    report = restarted.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(), timeout=60)
    assert report.ok and report.first_bad_position == 0
    with psycopg.connect(db) as conn:
        head = conn.execute("SELECT max(notification_id), count(*) FROM ledger_events").fetchone()
    assert head[0] == head[1] == report.events_checked  # gap-free positions
    assert restarted.stop() == 0 and b.stop() == 0


def test_postgres_restart_under_load(db, pg_cluster) -> None:
    server = ServerProcess(db)
    stop, lock, acked = threading.Event(), threading.Lock(), []
    codes: list[grpc.StatusCode] = []

    def probe() -> None:
        while not stop.is_set():
            try:
                server.history.GetNumberState(hpb.GetNumberStateRequest(number=number(0)), timeout=5)
            except grpc.RpcError as e:
                codes.append(e.code())
            time.sleep(0.05)

    registered: dict[str, str] = {}
    threads = [threading.Thread(target=load, args=([server], stop, acked, lock, s)) for s in range(4)]
    threads += [threading.Thread(target=register_load, args=(server, stop, registered, lock, s)) for s in range(16)]
    threads.append(threading.Thread(target=probe))
    for t in threads:
        t.start()
    time.sleep(1.0)
    pg_cluster.restart(down_seconds=8.0)
    before = len(acked)
    deadline = time.monotonic() + 30
    while len(acked) < before + 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= before + 20, "the server did not recover by itself"
    outage = [c for c in codes if c != grpc.StatusCode.NOT_FOUND]
    # While it was down, calls were answered UNAVAILABLE (retryable), not left hanging or failing otherwise.
    assert grpc.StatusCode.UNAVAILABLE in outage
    assert set(outage) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}, outage
    counts = provisioned_counts(db)
    assert all(counts.get(n) == 1 for n in acked) and all(c == 1 for c in counts.values())
    assert server.history.VerifyIntegrity(hpb.VerifyIntegrityRequest(), timeout=60).ok
    assert server.stop() == 0
    # Every acknowledged registration's data key was stored: its data opens after a restart.
    assert len(registered) > 20
    assert not unopened(db, registered), "an acknowledged registration has no data key"


def test_projection_worker_killed_mid_catch_up_matches_a_rebuild(db) -> None:
    server = ServerProcess(db, extra=("--no-projections",))
    for chunk in range(6):
        server.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(
                request_id=f"p{chunk}", numbers=[number(chunk * 5000 + i) for i in range(5000)]
            ),
            timeout=120,
        )
    command = [sys.executable, "-m", "ledger", "project", "--db", db, "--once"]
    worker = subprocess.Popen(command, env=ENV, stderr=subprocess.DEVNULL)
    STARTED.append(worker)
    deadline = time.monotonic() + 60
    position = 0
    while time.monotonic() < deadline and worker.poll() is None and position == 0:
        position = _tracked(db)
        time.sleep(0.005)
    worker.send_signal(signal.SIGKILL)
    worker.wait(30)
    with psycopg.connect(db) as conn:
        head = conn.execute("SELECT max(notification_id) FROM ledger_events").fetchone()[0]
    assert 0 < _tracked(db) < head, "the worker was not killed mid-catch-up"
    subprocess.run(command, env=ENV, check=True, capture_output=True, timeout=300)
    resumed = _dump(db)
    subprocess.run([*command, "--rebuild"], env=ENV, check=True, capture_output=True, timeout=300)
    assert _dump(db) == resumed and len(resumed["rm_numbers"]) == 30_000
    assert server.stop() == 0


def _tracked(db: str) -> int:
    try:
        with psycopg.connect(db) as conn:
            conn.execute('SET search_path TO "ledger_views"')
            return vt.tracked(conn)
    except psycopg.Error:
        return 0


def _dump(db: str) -> dict[str, list[str]]:
    with psycopg.connect(db) as conn:
        conn.execute('SET search_path TO "ledger_views"')
        return vt.dump(conn)


def test_processes_racing_for_one_number_and_one_identity(db) -> None:
    a, b = ServerProcess(db), ServerProcess(db)
    numbers = [number(500 + i) for i in range(9)]
    a.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=numbers))
    sids = []
    for i in range(7):
        sid = a.lifecycle.RegisterSubscriber(
            lpb.RegisterSubscriberRequest(
                request_id=f"r{i}", full_name=f"Racer {i}", id_type=1, id_number=resident_id(70 if i == 6 else i)
            )
        ).subscriber_id
        a.lifecycle.VerifyIdentity(
            lpb.VerifyIdentityRequest(
                request_id=f"v{i}", subscriber_id=sid, method=1, channel="retail", agent_id="x", evidence_ref="e"
            )
        )
        sids.append(sid)

    def activate(args: tuple[ServerProcess, str, str, str]) -> str:
        server, msisdn, sid, rid = args
        iccid = new_iccid()
        try:
            server.lifecycle.ActivateSim(
                lpb.ActivateSimRequest(
                    request_id=rid,
                    number=msisdn,
                    subscriber_id=sid,
                    iccid=iccid,
                    imsi=imsi_for(iccid),
                    channel="retail",
                    agent_id="x",
                ),
                timeout=30,
            )
            return "ok"
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.details()
            return "refused"

    # Six subscribers race through two processes for one number: exactly one wins.
    race = [((a, b)[i % 2], numbers[0], sids[i], f"one-{i}") for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        assert sorted(pool.map(activate, race)) == ["ok"] + ["refused"] * 5
    # One identity races for eight numbers through two processes: the cap (5) holds exactly.
    cap = [((a, b)[i % 2], numbers[1 + i], sids[6], f"cap-{i}") for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(activate, cap))
    assert results.count("ok") == 5 and results.count("refused") == 3
    assert a.stop() == 0 and b.stop() == 0


def test_migrate_then_workers_sharing_a_port_and_checks_from_a_read_store(db) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ledger", "migrate", "--db", db], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "schema ready" in result.stdout
    with psycopg.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables")}
    assert {"public.ledger_events", "public.event_chain", "ledger_keys.data_keys", "ledger_views.rm_numbers"} <= tables

    port = free_port()
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledger",
            "serve",
            "--db",
            db,
            "--listen",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--read-db",
            db,
            "--log-level",
            "WARNING",
        ],
        env=ENV,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[str] = []
        while time.monotonic() < deadline and len(workers) < 2:
            out = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout
            workers = out.split()
            time.sleep(0.2)
        assert len(workers) == 2
        from ledger.v1 import recycling_service_pb2 as rpb
        from ledger.v1 import recycling_service_pb2_grpc

        positions = []
        for i in range(20):  # a new connection each time: the kernel spreads them over the workers
            channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
            grpc.channel_ready_future(channel).result(timeout=60)
            stub = lifecycle_service_pb2_grpc.LifecycleServiceStub(channel)
            positions.append(
                stub.ProvisionNumbers(
                    lpb.ProvisionNumbersRequest(request_id=f"w{i}", numbers=[number(900 + i)]), timeout=30
                ).position
            )
            check = recycling_service_pb2_grpc.RecyclingServiceStub(channel).CheckNumber(
                rpb.CheckNumberRequest(number=number(900 + i), since_date="2020-01-01", min_position=positions[-1]),
                timeout=30,
            )
            assert check.result.as_of_position >= positions[-1]
            channel.close()
        assert sorted(positions) == positions and len(set(positions)) == 20
    finally:
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0


def test_a_projection_worker_per_read_model(db) -> None:
    server = ServerProcess(db, extra=("--no-projections",))
    server.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1), number(2)]))
    base = [sys.executable, "-m", "ledger", "project", "--db", db, "--once"]
    for views in ("numbers", "sim_swaps,compliance", "erasure"):
        subprocess.run([*base, "--views", views], env=ENV, check=True, capture_output=True, timeout=120)
    with psycopg.connect(db) as conn:
        conn.execute('SET search_path TO "ledger_views", public')
        tracked = vt.positions(conn)
        head = conn.execute("SELECT max(notification_id) FROM ledger_events").fetchone()[0]
    assert tracked == {"numbers": head, "sim_swaps": head, "compliance": head, "erasure": head}
    bad = subprocess.run([*base, "--views", "nonsense"], env=ENV, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown read models" in bad.stderr
    assert server.stop() == 0
