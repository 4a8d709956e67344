"""The HTTP port shares the gRPC edge's tokens and roles, call budgets and TLS settings, and without --auth
accepts loopback callers only."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest

from ledger.config import Limits
from ledger.server.http.gate import peer_of
from ledger.v1 import lifecycle_service_pb2 as lpb
from tests.conftest import number, running_server
from tests.e2e.test_auth_tls import _certificates, bearer, tokens  # noqa: F401 - tokens is a fixture
from tests.procs import Serve, free_port

STORES = ("sqlite", "postgres")
NR, RETRIEVE = "/number-recycling/v0.2/check", "/sim-swap/v2/retrieve-date"
PROVISION = "/ledger.v1.LifecycleService/ProvisionNumbers"


def test_tokens_and_roles(settings, clock, tokens) -> None:  # noqa: F811 - the fixture imported above
    path, issued = tokens
    for stubs, _ in running_server(dataclasses.replace(settings, auth_file=path, http_listen="127.0.0.1:0"), clock):
        stubs.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(request_id="p", numbers=[number(1)]), metadata=bearer(issued["operator"])
        )
        with httpx.Client(base_url=stubs.http, timeout=10) as client:

            def camara(token: str | None, correlator: str = "c-1") -> httpx.Response:
                headers = {"x-correlator": correlator} | ({"authorization": f"Bearer {token}"} if token else {})
                r = client.post(RETRIEVE, json={"phoneNumber": number(1)}, headers=headers)
                assert r.headers["x-correlator"] == correlator
                return r

            for token, status, code in (
                (None, 401, "UNAUTHENTICATED"),
                ("not-a-token", 401, "UNAUTHENTICATED"),
                (issued["operator"], 403, "PERMISSION_DENIED"),
                (issued["compliance"], 403, "PERMISSION_DENIED"),
            ):
                r = camara(token)
                assert (r.status_code, r.json()["status"], r.json()["code"]) == (status, status, code), r.text
            for role in ("checker", "admin"):
                r = camara(issued[role])
                assert r.status_code == 200 and r.json()["latestSimChange"] is None
            # A token is checked before the body is read: a bad body without a token is 401, not 400.
            assert client.post(NR, content=b"{bad").status_code == 401
            # The Connect routes: the role of their gRPC service.
            body = {"requestId": "p2", "numbers": [number(2)]}
            assert client.post(PROVISION, json=body).json()["code"] == "unauthenticated"
            r = client.post(PROVISION, json=body, headers={"authorization": f"Bearer {issued['checker']}"})
            assert (r.status_code, r.json()["code"]) == (403, "permission_denied")
            r = client.post(PROVISION, json=body, headers={"authorization": f"Bearer {issued['operator']}"})
            assert r.status_code == 200 and r.json()["provisionedCount"] == 1
            # The document needs no token.
            assert client.get("/openapi.json").status_code == 200


def test_call_budgets_answer_429_and_a_wait_past_its_timeout_503(settings, clock) -> None:
    limits = dataclasses.replace(Limits(), max_calls_per_caller=1)
    for stubs, _ in running_server(dataclasses.replace(settings, limits=limits, http_listen="127.0.0.1:0"), clock):
        with httpx.Client(base_url=stubs.http, timeout=30) as client:
            waiting: list[httpx.Response] = []
            # A check waiting for a position the ledger has not reached holds this caller's one place (it tries
            # again while the calls below hold it).
            body = {"number": number(1), "sinceDate": "2026-01-01", "minPosition": "1000000"}

            def wait(client: httpx.Client = client, body: dict = body, waiting: list = waiting) -> None:
                while True:
                    r = client.post(
                        "/ledger.v1.RecyclingService/CheckNumber", json=body, headers={"connect-timeout-ms": "3000"}
                    )
                    if r.status_code != 429:
                        waiting.append(r)
                        return

            waiter = threading.Thread(target=wait)
            waiter.start()
            refused = None
            while refused is None and waiter.is_alive():
                r = client.post(NR, json={"phoneNumber": number(1), "specifiedDate": "2026-01-01"})
                if r.status_code == 429:
                    refused = r
            waiter.join()
            assert refused is not None, "no call was refused while the caller's one place was held"
            assert refused.json()["code"] == "TOO_MANY_REQUESTS" and int(refused.headers["retry-after"]) >= 1
            (late,) = waiting
            assert (late.status_code, late.json()["code"]) == (503, "unavailable") and late.headers["retry-after"]
            assert "READ_MODEL_BEHIND" in late.text


def test_tls_and_mutual_tls(settings, clock, tmp_path) -> None:
    c = _certificates(tmp_path)
    tls = dataclasses.replace(settings, tls_cert=c["server.crt"], tls_key=c["server.key"], http_listen="127.0.0.1:0")
    ca = c["ca.crt"].read_bytes()
    for stubs, _ in running_server(tls, clock, grpc.ssl_channel_credentials(root_certificates=ca)):
        assert stubs.http.startswith("https://")
        with httpx.Client(base_url=stubs.http, verify=_context(c["ca.crt"]), timeout=10) as client:
            assert client.get("/openapi.json").status_code == 200
        with pytest.raises(httpx.HTTPError):  # plaintext to the TLS port
            httpx.get(stubs.http.replace("https://", "http://") + "/openapi.json", timeout=5)
    mutual = dataclasses.replace(tls, tls_client_ca=c["ca.crt"])
    client_credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=c["client.key"].read_bytes(), certificate_chain=c["client.crt"].read_bytes()
    )
    for stubs, _ in running_server(mutual, clock, client_credentials):
        with httpx.Client(base_url=stubs.http, verify=_context(c["ca.crt"], c), timeout=10) as client:
            r = client.post(RETRIEVE, json={"phoneNumber": number(9)})
            assert (r.status_code, r.json()["code"]) == (404, "IDENTIFIER_NOT_FOUND")
        with pytest.raises(httpx.HTTPError):  # no client certificate: the handshake fails
            httpx.get(stubs.http + "/openapi.json", verify=_context(c["ca.crt"]), timeout=5)


def _context(ca: Path, client: dict[str, Path] | None = None) -> ssl.SSLContext:
    """A client's TLS context trusting ``ca``, presenting the client certificate when given."""
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(str(client["client.crt"]), str(client["client.key"]))
    return context


def _address() -> str | None:
    """An address of this host that is not loopback (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: the kernel picks the outgoing address
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_without_auth_only_loopback_callers(tmp_path) -> None:
    assert peer_of(("127.0.0.1", 5)) == "ipv4:127.0.0.1:5" and peer_of(("::1", 5)) == "ipv6:[::1]:5"
    address = _address()
    if address is None:
        pytest.skip("this host has no address but loopback")
    port = free_port()
    server = Serve(f"sqlite:///{tmp_path}/ledger.db", extra=("--http", f"0.0.0.0:{port}"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                local = httpx.post(f"http://127.0.0.1:{port}{RETRIEVE}", json={"phoneNumber": number(1)}, timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert (local.status_code, local.json()["code"]) == (404, "IDENTIFIER_NOT_FOUND")
        remote = httpx.post(f"http://{address}:{port}{RETRIEVE}", json={"phoneNumber": number(1)}, timeout=5)
        assert (remote.status_code, remote.json()["code"]) == (401, "UNAUTHENTICATED")
        remote = httpx.post(f"http://{address}:{port}{PROVISION}", json={"requestId": "p", "numbers": [number(1)]})
        assert (remote.status_code, remote.json()["code"]) == (401, "unauthenticated")
    finally:
        assert server.stop() == 0


def test_each_worker_serves_the_http_port(tmp_path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    server = Serve(f"sqlite:///{tmp_path}/ledger.db", extra=("--workers", "2", "--http", f"127.0.0.1:{port}"), log=log)
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("HTTP API on 127.0.0.1:") < 2:  # each worker bound the shared port
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        for _ in range(20):  # new connections, spread by the kernel across the workers
            assert httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10).status_code == 200
    finally:
        assert server.stop() == 0
    assert "restarting" not in log.read_text() and "Traceback" not in log.read_text()
