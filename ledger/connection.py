"""How every command and batch job reaches a running server: one set of options, one channel helper.

``--target HOST:PORT`` (``LEDGER_TARGET``), ``--token`` (``LEDGER_TOKEN``, sent on every call as
``authorization: Bearer <token>``, as the server's ``--auth`` expects), ``--tls-ca`` (the CA that signed
the server's certificate; TLS instead of plaintext), ``--tls-cert`` and ``--tls-key`` (this client's
certificate, for a server that asks for one: mutual TLS). The token rides on the channel (a client
interceptor), so a job's stubs need no metadata of their own.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ledger.cli import UsageError

DEFAULT_TARGET = "127.0.0.1:50051"


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--target``, ``--token``, ``--tls-ca``, ``--tls-cert`` and ``--tls-key``, with their environment
    defaults."""
    group = parser.add_argument_group("connection to the server")
    group.add_argument(
        "--target",
        default=os.environ.get("LEDGER_TARGET") or DEFAULT_TARGET,
        help=f"server address HOST:PORT (default: LEDGER_TARGET, else {DEFAULT_TARGET})",
    )
    group.add_argument(
        "--token",
        default=os.environ.get("LEDGER_TOKEN") or None,
        help="bearer token for a server started with --auth (default: LEDGER_TOKEN; prefer the variable: "
        "a command line is visible to other users of the machine)",
    )
    group.add_argument("--tls-ca", type=Path, help="CA certificate (PEM) the server's certificate is signed by: TLS")
    group.add_argument("--tls-cert", type=Path, help="this client's certificate chain (PEM), for mutual TLS")
    group.add_argument("--tls-key", type=Path, help="this client's private key (PEM), with --tls-cert")


@dataclass(frozen=True)
class Connection:
    """Where the server is and how to talk to it."""

    target: str = DEFAULT_TARGET
    token: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Connection:
        """The connection the parsed options name; UsageError for a combination that cannot work."""
        connection = cls(args.target, args.token or None, args.tls_ca, args.tls_cert, args.tls_key)
        connection.check()
        return connection

    def check(self) -> None:
        """Refuse options that cannot work together, before any call."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UsageError("--tls-cert and --tls-key go together (this client's certificate and its key)")
        if self.tls_cert is not None and self.tls_ca is None:
            raise UsageError("--tls-cert needs --tls-ca (the CA that signed the server's certificate)")
        if self.token is not None and (not self.token.isprintable() or " " in self.token.strip()):
            raise UsageError("--token must be one printable word (as `ledger token` printed it)")

    @property
    def tls(self) -> bool:
        """Whether the channel is TLS."""
        return self.tls_ca is not None

    def channel(self, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        """A channel to the server: TLS when a CA is given, with the token sent on every call."""
        if self.tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(self.tls_ca, "--tls-ca"),
                private_key=_read(self.tls_key, "--tls-key") if self.tls_key else None,
                certificate_chain=_read(self.tls_cert, "--tls-cert") if self.tls_cert else None,
            )
            channel = grpc.secure_channel(self.target, credentials, options=list(options))
        else:
            channel = grpc.insecure_channel(self.target, options=list(options))
        if self.token:
            return grpc.intercept_channel(channel, AddMetadata([("authorization", f"Bearer {self.token.strip()}")]))
        return channel


def _read(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"{option} {path}: {e.strerror or e}") from None


class _Details(grpc.ClientCallDetails):
    """Call details with metadata added (grpc's own type is abstract)."""

    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str | bytes]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class AddMetadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds metadata (``authorization: Bearer <token>``, say) to every call of a channel; a call's own
    value of the same key gives way."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)
        self.keys = {k for k, _ in pairs}

    def _with_metadata(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [m for m in (details.metadata or ()) if m[0] not in self.keys]
        return _Details(details, [*metadata, *self.pairs])

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        """Send a unary call with the metadata."""
        return continuation(self._with_metadata(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        """Send a server-streaming call with the metadata."""
        return continuation(self._with_metadata(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        """Send a client-streaming call with the metadata."""
        return continuation(self._with_metadata(details), requests)

    def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        """Send a bidirectional call with the metadata."""
        return continuation(self._with_metadata(details), requests)
