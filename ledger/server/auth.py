"""Authentication and roles: bearer tokens mapped to an actor and roles by the server's configuration.

The configuration (TOML, given with ``--auth``) lists SHA-256 digests of tokens, never tokens:

    [[tokens]]
    actor = "crm-prod"
    sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
    roles = ["operator"]

Roles: ``operator`` (LifecycleService), ``compliance`` (HistoryService, including personal data, and
IdentityService.ListNumbersByIdentity), ``checker`` (RecyclingService and IdentityService.MatchIdentity),
``admin`` (everything). Without a configuration the server accepts
loopback callers only, with every role, and records ``x-ledger-actor`` (or the peer) as the actor.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import ipaddress
import secrets
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ledger.policy import ConfigError
from ledger.server.errors import EdgeRefusal, PermissionDenied, Unauthenticated, refuse, wrap_handler

ROLES = ("operator", "compliance", "checker", "admin")
SERVICE_ROLES = {
    "ledger.v1.LifecycleService": "operator",
    "ledger.v1.HistoryService": "compliance",
    "ledger.v1.RecyclingService": "checker",
}
# Services whose methods need different roles: the role of each method (``service/method``).
METHOD_ROLES = {
    "ledger.v1.IdentityService/MatchIdentity": "checker",
    "ledger.v1.IdentityService/ListNumbersByIdentity": "compliance",
}
OPEN_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
ACTOR_KEY = "x-ledger-actor"


@dataclass(frozen=True)
class Caller:
    """Who is calling and what they may do."""

    actor: str
    roles: frozenset[str]
    authenticated: bool

    def may(self, role: str) -> bool:
        """Whether the caller holds ``role`` (admin holds every role)."""
        return role in self.roles or "admin" in self.roles


CURRENT_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the RPC being served on this thread."""
    return CURRENT_CALLER.get()


@dataclass(frozen=True)
class AuthConfig:
    """Token digests and their actors and roles."""

    tokens: dict[str, Caller]

    @classmethod
    def from_toml(cls, path: Path) -> AuthConfig:
        """Read and check an auth file."""
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read auth file {path}: {e}") from e
        tokens: dict[str, Caller] = {}
        for i, entry in enumerate(data.get("tokens", [])):
            digest, actor, roles = entry.get("sha256", ""), entry.get("actor", ""), entry.get("roles", [])
            if not isinstance(digest, str) or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
                raise ConfigError(f"tokens[{i}].sha256 must be 64 lowercase hex characters")
            if not isinstance(actor, str) or not actor or not actor.isprintable():
                raise ConfigError(f"tokens[{i}].actor is required")
            if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
                raise ConfigError(f"tokens[{i}].roles must be a non-empty list of {', '.join(ROLES)}")
            tokens[digest] = Caller(actor, frozenset(roles), authenticated=True)
        if not tokens:
            raise ConfigError(f"auth file {path} lists no tokens")
        return cls(tokens)

    def caller_for(self, token: str) -> Caller | None:
        """The caller a token belongs to, compared in constant time."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for known, caller in self.tokens.items():
            if hmac.compare_digest(known, digest):
                found = caller
        return found


def new_token() -> tuple[str, str]:
    """A fresh random token and its SHA-256 digest (hex)."""
    token = "lgr_" + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def is_loopback(peer: str) -> bool:
    """Whether a gRPC peer string (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``, ``unix:...``) is local."""
    if peer.startswith("unix:"):
        return True
    try:
        kind, rest = peer.split(":", 1)
        host = rest.rsplit(":", 1)[0].strip("[]") if kind in ("ipv4", "ipv6") else ""
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def claimed_actor(context: grpc.ServicerContext) -> str:
    """The actor a caller names in ``x-ledger-actor`` (without credentials configured), else its address."""
    claimed = _metadata(context, ACTOR_KEY)
    return claimed if claimed and len(claimed) <= 128 and claimed.isprintable() else f"anonymous@{context.peer()}"


def actor_of(context: grpc.ServicerContext) -> str:
    """Who is calling: the authenticated actor; without credentials configured, the ``x-ledger-actor``
    metadata when given, else the peer address."""
    caller = current_caller()
    return caller.actor if caller is not None else claimed_actor(context)


def _metadata(context: grpc.ServicerContext, key: str) -> str | None:
    return _find(context.invocation_metadata(), key)


def _find(metadata: Any, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key and isinstance(v, str):
            return v
    return None


def _unparsed(data: bytes) -> bytes:
    """The deserializer of a refused call: its bytes are never parsed."""
    return data


def _refusal(handler: grpc.RpcMethodHandler, exc: EdgeRefusal) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that answers ``exc`` without reading a message."""

    async def refuse_unary(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await refuse(context, exc)

    async def refuse_stream(_request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await refuse(context, exc)
        yield  # not reached: an async generator, as the handler it stands for

    return wrap_handler(
        handler._replace(request_deserializer=_unparsed), lambda _: refuse_unary, lambda _: refuse_stream
    )


def authenticate(config: AuthConfig, method: str, metadata: Any) -> Caller:
    """The caller holding the token in this call's metadata, or Unauthenticated / PermissionDenied."""
    header = _find(metadata, "authorization") or ""
    scheme, _, token = header.partition(" ")
    caller = config.caller_for(token.strip()) if scheme.lower() == "bearer" and token else None
    if caller is None:
        raise Unauthenticated("a valid token is required: metadata 'authorization: Bearer <token>'")
    full = method.lstrip("/")
    service = full.split("/", 1)[0]
    role = METHOD_ROLES.get(full) or SERVICE_ROLES.get(service)
    if role is not None and not caller.may(role):
        raise PermissionDenied(
            f"{caller.actor} lacks the {role} role needed for {full if full in METHOD_ROLES else service}"
        )
    return caller


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates each call and checks its service's role before the servicer runs.

    With tokens configured it decides from the call's metadata alone, before any message is read, so a
    call without a valid token is answered UNAUTHENTICATED (or PERMISSION_DENIED) and its bytes are never
    parsed. Without tokens the peer's address decides, which only the call's context knows. The caller is
    set in the call's task (the interceptors and the handler run in one task), so it is current for the
    servicer and, through ``Blocking.run``, for its work on the pool."""

    def __init__(self, config: AuthConfig | None) -> None:
        self.config = config
        self._local: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Authenticate from the metadata before the call's message is read."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.lstrip("/").startswith(OPEN_SERVICES):
            return handler
        if self.config is None:
            local = self._local.get(method)
            if local is None:
                local = self._local[method] = wrap_handler(handler, _local_unary, _local_stream)
            return local
        try:
            caller = authenticate(self.config, method, handler_call_details.invocation_metadata)
        except (Unauthenticated, PermissionDenied) as exc:
            return _refusal(handler, exc)
        CURRENT_CALLER.set(caller)
        return handler


_NOT_LOCAL = Unauthenticated("this server has no credentials configured and accepts loopback connections only")


def _local_caller(context: grpc.aio.ServicerContext) -> Caller | None:
    """Without credentials configured: a loopback caller with every role, else None."""
    if not is_loopback(context.peer()):
        return None
    return Caller(claimed_actor(context), frozenset({"admin"}), authenticated=False)


def _local_unary(behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        caller = _local_caller(context)
        if caller is None:
            return await refuse(context, _NOT_LOCAL)
        CURRENT_CALLER.set(caller)
        return await behaviour(request, context)

    return wrapper


def _local_stream(behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        caller = _local_caller(context)
        if caller is None:
            await refuse(context, _NOT_LOCAL)
            return
        CURRENT_CALLER.set(caller)
        async for response in behaviour(request, context):
            yield response

    return wrapper
