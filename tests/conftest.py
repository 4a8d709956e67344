"""Shared fixtures: a fake clock, the application on a real SQLite file, and a real gRPC server."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from ledger.application.commands import ActivateSim, ProvisionNumbers, RegisterSubscriber, VerifyIdentity
from ledger.application.pipeline import execute
from ledger.bootstrap import key_jobs, open_ledger, open_projector, start_projections
from ledger.config import Settings, StoreConfig
from ledger.domain.rules import luhn_digit, resident_id_check_char
from ledger.policy import Policy
from ledger.server.app import create_server
from ledger.v1 import (
    history_service_pb2_grpc,
    lifecycle_service_pb2_grpc,
    recycling_service_pb2_grpc,
)
from ledger.v1 import (
    lifecycle_service_pb2 as lpb,
)
from projections.projector import Projector

# A valid resident ID card number (GB 11643) and its birth date.
RESIDENT_ID = "11010519491231002X"
RESIDENT_DOB = "1949-12-31"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.t = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, **kwargs: float) -> datetime:
        self.t += timedelta(**kwargs)
        return self.t


_iccids = itertools.count(1)


def new_iccid() -> str:
    """A fresh valid 19-digit ICCID."""
    body = f"898600{next(_iccids):012d}"
    return body + luhn_digit(body)


def imsi_for(iccid: str) -> str:
    """A valid IMSI derived from an ICCID."""
    return "46000" + iccid[-11:-1].rjust(10, "0")


def resident_id(seq: int) -> str:
    """A distinct valid resident ID card number for each seq."""
    first17 = f"110105199001{(seq % 28) + 1:02d}{seq % 1000:03d}"
    return first17 + resident_id_check_char(first17)


def number(i: int) -> str:
    """A valid Chinese mobile number for each i."""
    return f"+86138{i:08d}"


def onboard_app(app, msisdn: str, seq: int):
    """Through the application: provision, register, verify and activate; returns the subscriber id."""
    from uuid import UUID

    execute(app, ProvisionNumbers(numbers=[msisdn]), request_id=f"p{seq}", actor="t")
    sid = UUID(
        execute(
            app,
            RegisterSubscriber(
                full_name=f"Person {seq}", id_type="RESIDENT_ID_CARD", id_number=resident_id(seq), date_of_birth=""
            ),
            request_id=f"r{seq}",
            actor="t",
        ).data["subscriber_id"]
    )
    execute(
        app,
        VerifyIdentity(subscriber_id=sid, method="ID_CARD_READER", channel="retail", agent_id="a", evidence_ref="e"),
        request_id=f"v{seq}",
        actor="t",
    )
    iccid = new_iccid()
    execute(
        app,
        ActivateSim(
            number=msisdn, subscriber_id=sid, iccid=iccid, imsi=imsi_for(iccid), channel="retail", agent_id="a"
        ),
        request_id=f"a{seq}",
        actor="t",
    )
    return sid


@pytest.fixture(autouse=True)
def _logging_as_it_was():
    """A command run in process (``ledger.__main__.main``) sets up the root logger as ``ledger serve`` does;
    put it back after each test, so a later test's output holds no log line of an earlier one's setup."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _ledger_environment_as_it_was():
    """A job run in process may set ``LEDGER_*`` variables for the processes it starts (the benchmark sets its
    master key); put them back after each test, so a later test's ledger reads no key an earlier one chose."""
    before = {k: v for k, v in os.environ.items() if k.startswith("LEDGER_")}
    yield
    for key in [k for k in os.environ if k.startswith("LEDGER_") and k not in before]:
        del os.environ[key]
    os.environ.update(before)


@pytest.fixture(autouse=True, scope="session")
def _epoch_key_files_removed():
    """A ledger on PostgreSQL keeps its epoch key file under the home directory (one per database): remove
    those of the session's test databases when it ends, so test runs leave none behind."""
    yield
    from ledger.config import StoreConfig
    from ledger.keys.epoch import default_path
    from tests.pgserver import CREATED

    for url in CREATED:
        default_path(StoreConfig.from_url(url)).unlink(missing_ok=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


TEST_MASTER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Modules that set ``STORES = ("sqlite", "postgres")`` run each of their tests on both stores."""
    stores = getattr(metafunc.module, "STORES", None)
    if stores and "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", stores, indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture
def settings(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> Settings:
    if store_kind == "postgres":
        from tests.pgserver import new_database

        return Settings(
            listen="127.0.0.1:0",
            store=StoreConfig.from_url(new_database(request.getfixturevalue("pg_admin_url"))),
            policy=Policy(identity_retention_days=0),
            max_workers=32,
            master_key_text=TEST_MASTER_KEY,
        )
    return Settings(
        listen="127.0.0.1:0",
        store=StoreConfig.from_url(f"sqlite:///{tmp_path}/ledger.db"),
        policy=Policy(identity_retention_days=0),
        max_workers=32,
    )


@pytest.fixture
def app(settings: Settings, clock: FakeClock):
    application = open_ledger(settings, clock)
    yield application
    application.close()
    application.vault.store.close()


class Stubs:
    """Client stubs over one real channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.lifecycle = lifecycle_service_pb2_grpc.LifecycleServiceStub(channel)
        self.history = history_service_pb2_grpc.HistoryServiceStub(channel)
        self.recycling = recycling_service_pb2_grpc.RecyclingServiceStub(channel)
        self._ids = itertools.count(1)
        self.projector: Projector | None = None
        self.target = ""
        self.http = ""  # the HTTP port's base URL, when the settings serve one (http_listen)
        self.metrics = ""  # the metrics port's base URL, when the settings serve one (metrics_listen)

    def rid(self) -> str:
        return f"req-{next(self._ids)}"

    def onboard(self, msisdn: str, seq: int = 1, verify: bool = True) -> tuple[str, str, str]:
        """Provision, register, verify and activate; returns (subscriber_id, tenure_id, iccid)."""
        self.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id=self.rid(), numbers=[msisdn]))
        sid = self.lifecycle.RegisterSubscriber(
            lpb.RegisterSubscriberRequest(
                request_id=self.rid(), full_name=f"Subscriber {seq}", id_type=1, id_number=resident_id(seq)
            )
        ).subscriber_id
        if verify:
            self.lifecycle.VerifyIdentity(
                lpb.VerifyIdentityRequest(
                    request_id=self.rid(),
                    subscriber_id=sid,
                    method=1,
                    channel="retail",
                    agent_id="a1",
                    evidence_ref="ev",
                )
            )
        iccid = new_iccid()
        activated = self.lifecycle.ActivateSim(
            lpb.ActivateSimRequest(
                request_id=self.rid(),
                number=msisdn,
                subscriber_id=sid,
                iccid=iccid,
                imsi=imsi_for(iccid),
                channel="retail",
                agent_id="a1",
            )
        )
        # Checks that follow read the read models: they see this activation (read-your-writes, as a client
        # that passes min_position would), however loaded the machine.
        if self.projector is not None and not self.projector.wait_for(activated.position, 30):
            raise TimeoutError(f"the read models did not reach position {activated.position} in 30 s")
        return sid, activated.tenure_id, iccid


@pytest.fixture
def server(settings: Settings, clock: FakeClock):
    """The production server on loopback over a real SQLite file; yields (stubs, app)."""
    yield from running_server(settings, clock)


def running_server(settings: Settings, clock: FakeClock, credentials: grpc.ChannelCredentials | None = None):
    """Start the production server (projections in-process); yields (stubs, app); stops it after."""
    application = open_ledger(settings, clock)
    projector = open_projector(settings, application)
    stop = threading.Event()
    threads = start_projections(settings, projector, key_jobs(settings, application), stop)
    srv, port = create_server(settings, application, projector=projector)
    srv.start()
    if credentials is None:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    else:
        channel = grpc.secure_channel(
            f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", "localhost")]
        )
    grpc.channel_ready_future(channel).result(timeout=10)
    stubs = Stubs(channel)
    stubs.projector = projector
    stubs.target = f"127.0.0.1:{port}"
    if srv.http is not None:
        scheme = "https" if settings.tls_cert else "http"
        stubs.http = f"{scheme}://127.0.0.1:{srv.http.port}"
    if srv.metrics is not None:
        stubs.metrics = f"http://127.0.0.1:{srv.metrics.port}"
    yield stubs, application
    channel.close()
    srv.stop(None).wait()
    stop.set()
    for thread in threads:
        thread.join(10)
    projector.close()
    application.close()
    application.vault.store.close()


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster on a loopback port for the whole session."""
    from tests.pgserver import Cluster

    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_admin_url(pg_cluster) -> str:
    """The cluster's maintenance database URL."""
    return pg_cluster.admin_url()


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request, tmp_path: Path) -> Settings:
    """Settings for each store: an SQLite file, and a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return Settings(
            listen="127.0.0.1:0",
            store=StoreConfig.from_url(f"sqlite:///{tmp_path}/ledger.db"),
            policy=Policy(identity_retention_days=0),
        )
    from tests.pgserver import new_database

    url = new_database(request.getfixturevalue("pg_admin_url"))
    return Settings(
        listen="127.0.0.1:0",
        store=StoreConfig.from_url(url),
        policy=Policy(identity_retention_days=0),
        master_key_text="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )


@pytest.fixture
def store_app(store_settings: Settings, clock: FakeClock):
    """The application on each store."""
    application = open_ledger(store_settings, clock)
    yield application
    application.close()
    application.vault.store.close()
