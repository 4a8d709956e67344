"""Tokens and roles, TLS and mutual TLS, over a real server on loopback."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ledger.server.auth import AuthConfig, is_loopback, new_token
from ledger.v1 import history_service_pb2 as hpb
from ledger.v1 import lifecycle_service_pb2 as lpb
from ledger.v1 import recycling_service_pb2 as rpb
from tests.conftest import running_server
from tests.e2e.test_lifecycle_grpc import details

# Every test here runs on both stores.
STORES = ("sqlite", "postgres")

ROLES = ("operator", "compliance", "checker", "admin")


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    issued: dict[str, str] = {}
    lines = []
    for role in ROLES:
        token, digest = new_token()
        issued[role] = token
        lines.append(f'[[tokens]]\nactor = "{role}-system"\nsha256 = "{digest}"\nroles = ["{role}"]\n')
    path = tmp_path / "auth.toml"
    path.write_text("\n".join(lines))
    return path, issued


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def code_of(call, request, metadata=()) -> grpc.StatusCode:
    try:
        result = call(request, metadata=metadata, timeout=10)
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def test_each_role_gets_what_it_has_and_nothing_else(settings, clock, tokens) -> None:
    path, issued = tokens
    for stubs, app in running_server(dataclasses.replace(settings, auth_file=path), clock):
        provision = lpb.ProvisionNumbersRequest(request_id="p", numbers=["+8613800000001"])
        history = hpb.GetNumberHistoryRequest(number="+8613800000001")
        check = rpb.CheckNumberRequest(number="+8613800000001", since_date="2026-01-01")
        calls = {
            "operator": (stubs.lifecycle.ProvisionNumbers, provision),
            "compliance": (stubs.history.GetNumberHistory, history),
            "checker": (stubs.recycling.CheckNumber, check),
        }
        # No token, a wrong token, a malformed header: UNAUTHENTICATED, nothing recorded.
        for metadata in ((), bearer("lgr_wrong"), (("authorization", issued["admin"]),)):
            for call, request in calls.values():
                assert code_of(call, request, metadata) == grpc.StatusCode.UNAUTHENTICATED
        assert app.reader.max_position() == 0
        # Provisioning first, as operator, so the other reads find the number.
        assert code_of(stubs.lifecycle.ProvisionNumbers, provision, bearer(issued["operator"])) == grpc.StatusCode.OK
        for role in ("operator", "compliance", "checker"):
            for needed, (call, request) in calls.items():
                expected = grpc.StatusCode.OK if needed == role else grpc.StatusCode.PERMISSION_DENIED
                assert code_of(call, request, bearer(issued[role])) == expected, (role, needed)
        for call, request in calls.values():
            assert code_of(call, request, bearer(issued["admin"])) == grpc.StatusCode.OK
        # The authenticated actor is recorded; a claimed actor header is ignored.
        events = list(
            stubs.history.GetNumberHistory(
                history, metadata=(*bearer(issued["compliance"]), ("x-ledger-actor", "someone-else"))
            )
        )
        assert events[0].event.actor == "operator-system"
        # Health and reflection stay open.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        assert health_pb2_grpc.HealthStub(stubs.channel).Check(health_pb2.HealthCheckRequest()).status == 1
        with pytest.raises(grpc.RpcError) as e:
            stubs.lifecycle.ProvisionNumbers(provision)
        assert details(e.value)[0] == "UNAUTHENTICATED"


def test_personal_data_needs_a_purpose(settings, clock, tokens) -> None:
    path, issued = tokens
    for stubs, _ in running_server(dataclasses.replace(settings, auth_file=path), clock):
        stubs.lifecycle.ProvisionNumbers(
            lpb.ProvisionNumbersRequest(request_id="p", numbers=["+8613800000001"]), metadata=bearer(issued["operator"])
        )
        request = hpb.GetNumberHistoryRequest(number="+8613800000001", include_personal_data=True)
        assert code_of(stubs.history.GetNumberHistory, request, bearer(issued["compliance"])) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )


def test_without_credentials_only_loopback_peers_are_accepted() -> None:
    assert is_loopback("ipv4:127.0.0.1:50000") and is_loopback("ipv6:[::1]:50000") and is_loopback("unix:/tmp/s")
    assert not is_loopback("ipv4:10.0.0.7:50000") and not is_loopback("ipv6:[2001:db8::1]:443")
    assert not is_loopback("garbage")


def test_auth_file_is_checked(tmp_path: Path) -> None:
    from ledger.policy import ConfigError

    bad = tmp_path / "auth.toml"
    for text in (
        "",
        '[[tokens]]\nactor = "x"\nsha256 = "abc"\nroles = ["operator"]\n',
        f'[[tokens]]\nactor = "x"\nsha256 = "{"a" * 64}"\nroles = ["root"]\n',
    ):
        bad.write_text(text)
        with pytest.raises(ConfigError):
            AuthConfig.from_toml(bad)


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all signed by the CA."""
    now = dt.datetime.now(dt.UTC)

    def make(name: str, issuer_key, issuer_name, is_ca: bool, san: list | None = None):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name or subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        return key, cert

    ca_key, ca = make("ledger test CA", None, None, True)
    server_key, server = make(
        "localhost",
        ca_key,
        ca.subject,
        False,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key, client = make("crm-client", ca_key, ca.subject, False)
    paths = {}
    for name, key, cert in (("ca", None, ca), ("server", server_key, server), ("client", client_key, client)):
        paths[f"{name}.crt"] = folder / f"{name}.crt"
        paths[f"{name}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            paths[f"{name}.key"] = folder / f"{name}.key"
            paths[f"{name}.key"].write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
    return paths


def test_tls_and_mutual_tls(settings, clock, tmp_path: Path) -> None:
    c = _certificates(tmp_path)
    ca = c["ca.crt"].read_bytes()
    tls = dataclasses.replace(settings, tls_cert=c["server.crt"], tls_key=c["server.key"])
    for stubs, _ in running_server(tls, clock, grpc.ssl_channel_credentials(root_certificates=ca)):
        stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p", numbers=["+8613800000001"]))
    mutual = dataclasses.replace(tls, tls_client_ca=c["ca.crt"])
    client = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=c["client.key"].read_bytes(), certificate_chain=c["client.crt"].read_bytes()
    )
    for stubs, _ in running_server(mutual, clock, client):
        stubs.lifecycle.ProvisionNumbers(lpb.ProvisionNumbersRequest(request_id="p2", numbers=["+8613800000002"]))
        # Without a client certificate the handshake fails.
        port = stubs.target.rsplit(":", 1)[1]
        bare = grpc.secure_channel(
            f"127.0.0.1:{port}",
            grpc.ssl_channel_credentials(root_certificates=ca),
            options=[("grpc.ssl_target_name_override", "localhost")],
        )
        with pytest.raises(grpc.RpcError) as e:
            lpb_stub = type(stubs.lifecycle)(bare)
            lpb_stub.ProvisionNumbers(
                lpb.ProvisionNumbersRequest(request_id="p3", numbers=["+8613800000003"]), timeout=3
            )
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        bare.close()
