"""The HTTP port (``ledger serve --http HOST:PORT``): a Starlette app served by uvicorn on the gRPC edge's
loop, in the same process and on the same application. Routes: the CAMARA APIs (``camara.ROUTES``), every
unary RPC as a Connect call (``connect.connect_methods``) and ``GET /openapi.json``. Every call passes
through the gRPC server's interceptors (``gate.Gate``): one set of tokens, roles, budgets and error
mappings for both protocols."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.server.errors import Malformed
from ledger.server.http import camara, camara_errors, connect
from ledger.server.http.gate import Failure, Gate, HttpContext, peer_of
from ledger.server.http.openapi import document
from ledger.server.observer import HttpObserver
from ledger.server.tracing import HttpTracing

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ledger.config import Settings
    from projections.answers import Answers

log = logging.getLogger(__name__)
JSON = "application/json"
CORRELATOR = re.compile(rb"[a-zA-Z0-9\-_:;./<>{}]{0,256}")
MAX_CAMARA_BODY = 64 * 1024
MAX_CONNECT_BODY = 4 * 1024 * 1024  # as gRPC's message limit (app.MAX_MESSAGE_BYTES)


def build_app(
    gate: Gate, answers: Answers, metrics: bool = False, access_log: bool = False, tracer: Tracer | None = None
) -> ASGIApp:
    """The HTTP app: the CAMARA routes and the Connect routes of every unary RPC registered with ``gate``,
    and the OpenAPI document of them all; each call's ``x-correlator`` checked and echoed, and the call
    timed and logged (``metrics``, ``access_log``), and traced in a span of its own (``tracer``)."""
    routes: list[Route] = []
    for route in camara.ROUTES:
        if not isinstance(route.answer, camara.ByRpc):
            gate.add(route.method, camara.handler(route, answers))
        routes.append(Route(route.path, _camara_endpoint(route, gate), methods=["POST"]))
    table = connect.connect_methods(gate.handlers)
    routes.extend(Route(m.path, _connect_endpoint(m, gate), methods=["POST"]) for m in table)
    spec = orjson.dumps(document(camara.ROUTES, table, _version()))

    async def openapi(_request: Request) -> Response:
        return Response(spec, media_type=JSON)

    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    app = Starlette(routes=routes, exception_handlers={404: _unrouted, 405: _unrouted})
    paths = frozenset(r.path for r in routes)
    observed = HttpObserver(Correlator(app), paths, metrics, access_log)
    return observed if tracer is None else HttpTracing(observed, paths, tracer)


async def _unrouted(request: Request, exc: Exception) -> Response:
    """A path or method not served, in the error format of the routes under that path."""
    status = getattr(exc, "status_code", 404)
    headers = dict(getattr(exc, "headers", None) or {})  # Allow, on a 405
    text = "no such route (GET /openapi.json lists them)" if status == 404 else f"{request.method} is not served here"
    if request.url.path.startswith("/ledger."):
        body: dict[str, Any] = {"code": "unimplemented", "message": text}
    else:
        body = {"status": status, "code": "NOT_FOUND" if status == 404 else "METHOD_NOT_ALLOWED", "message": text}
    return Response(orjson.dumps(body), status, headers, JSON)


def _version() -> str:
    try:
        return metadata.version("subscriber-ledger")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout without installing
        return "0"


def _metadata(request: Request) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw)


async def _body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None when it is longer than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _camara_endpoint(route: camara.CamaraRoute, gate: Gate) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await _body(request, MAX_CAMARA_BODY)
        call, sent = (
            route.call_request(body)
            if body is not None
            else (Malformed("size", [("body", f"is larger than {MAX_CAMARA_BODY} bytes")]), {})
        )
        outcome = await gate.call(route.method, call, HttpContext(peer_of(request.client), _metadata(request)))
        if isinstance(outcome, Failure):
            status, error, headers = camara_errors.camara_error(outcome)
            return Response(orjson.dumps(error), status, headers, media_type=JSON)
        return Response(orjson.dumps(route.answer_body(sent, outcome)), media_type=JSON)

    return endpoint


def _connect_endpoint(method: connect.ConnectMethod, gate: Gate) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        codec = connect.content_type_of(request.headers.get("content-type", ""))
        if codec is None:
            error = {
                "code": "invalid_argument",
                "message": "Content-Type must be application/json or application/proto",
            }
            return Response(orjson.dumps(error), 415, {"accept-post": "application/json, application/proto"}, JSON)
        body = await _body(request, MAX_CONNECT_BODY)
        if body is None:
            error = {"code": "resource_exhausted", "message": f"the body is larger than {MAX_CONNECT_BODY} bytes"}
            return Response(orjson.dumps(error), 429, {"retry-after": "1"}, JSON)
        context = HttpContext(
            peer_of(request.client), _metadata(request), connect.timeout_of(request.headers.get("connect-timeout-ms"))
        )
        outcome = await gate.call(method.path, method.parse(body, codec), context)
        if isinstance(outcome, Failure):
            status, error = connect.connect_error(outcome)
            headers = (
                {"retry-after": str(camara_errors.RETRY_AFTER.get(outcome.reason, 1))} if status in (429, 503) else {}
            )
            return Response(orjson.dumps(error), status, headers, JSON)
        return Response(method.encode(outcome, codec), media_type=codec)

    return endpoint


class Correlator:
    """Echoes ``x-correlator`` on every response; a value that does not fit CAMARA's pattern is answered
    400 INVALID_ARGUMENT (in the route's error format) and not echoed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = next((v for k, v in scope["headers"] if k == b"x-correlator"), None)
        if value is None:
            await self.app(scope, receive, send)
            return
        if not CORRELATOR.fullmatch(value):
            await _refuse_correlator(scope, send)
            return

        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-correlator", value)]
            await send(message)

        await self.app(scope, receive, send_with)


async def _refuse_correlator(scope: Scope, send: Send) -> None:
    text = "x-correlator must match ^[a-zA-Z0-9-_:;.\\/<>{}]{0,256}$"
    is_connect = str(scope.get("path", "")).startswith("/ledger.")
    error: dict[str, Any] = (
        {"code": "invalid_argument", "message": text}
        if is_connect
        else {"status": 400, "code": "INVALID_ARGUMENT", "message": text}
    )
    body = orjson.dumps(error)
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def bind(listen: str, reuse_port: bool) -> socket.socket:
    """A socket bound to ``listen`` (HOST:PORT; port 0 picks one), shared with sibling processes when
    ``reuse_port`` (``serve --workers N``: the kernel spreads connections across them, as for gRPC)."""
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port_text.isdigit():
        raise OSError(f"--http must be HOST:PORT (for example 127.0.0.1:8080), got {listen!r}")
    try:
        infos = socket.getaddrinfo(host, int(port_text), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
    except OSError as e:
        raise OSError(f"cannot listen on {listen} for HTTP: {e.strerror or e}") from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(infos[0][4])
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {listen} for HTTP: {e.strerror or e} (pass another --http HOST:PORT)") from e
    return sock


class HttpServer:
    """uvicorn serving the HTTP app on the edge's loop (a task of it), with the server's TLS settings."""

    def __init__(self, app: ASGIApp, sock: socket.socket, settings: Settings, tls_from_settings: bool = True) -> None:
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        tls: dict[str, Any] = {}
        if tls_from_settings and settings.tls_cert and settings.tls_key:
            tls = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
            if settings.tls_client_ca:
                tls |= {"ssl_ca_certs": str(settings.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        config = uvicorn.Config(
            app,
            loop="none",  # the edge's loop, already running
            http="h11",
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,  # the server's logging stays as configured
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # the peer's address decides loopback access: no header may change it
            server_header=False,
            timeout_graceful_shutdown=max(1, int(settings.grace_seconds)),
            **tls,
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving (on the running loop); returns once the port accepts connections."""
        self._task = asyncio.ensure_future(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise OSError("the HTTP server did not start")
            await asyncio.sleep(0.01)

    async def stop(self, _grace: float | None) -> None:
        """Stop accepting, let calls in flight finish (within the grace period), close the connections."""
        self.server.should_exit = True
        if self._task is not None:
            await self._task
        self.sock.close()
