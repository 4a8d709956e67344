"""The aio edge serves plain (sync) methods added to a server later with no edit to the edge: on the pool,
with the caller set, errors mapped, and waits deferred to the loop holding no thread."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures

import grpc

from ledger.bootstrap import open_ledger
from ledger.domain import errors
from ledger.server.app import create_server
from ledger.server.auth import actor_of
from ledger.server.bridge import defer

SERVICE = "test.v1.Plain"
# Long enough that a call made meanwhile is answered before the waits end even on a busy machine.
LATER_SECONDS = 2.0


class Plain:
    """Plain methods as a servicer of another change would write them."""

    def __init__(self) -> None:
        self.runs: Counter[bytes] = Counter()
        self.threads: set[str] = set()

    def Who(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.threads.add(threading.current_thread().name)
        return actor_of(context).encode()

    def Refuse(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        raise errors.InvalidArgument([("number", "is not a phone number")])

    def Later(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Waits ``LATER_SECONDS`` the first time it runs for a request (as a check with ``min_position``
        does)."""
        self.runs[request] += 1
        defer(context, lambda: asyncio.sleep(LATER_SECONDS))
        return b"runs=%d" % self.runs[request]

    def Count(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for i in range(int(request)):
            yield b"%d" % i


def _handlers(plain: Plain) -> grpc.GenericRpcHandler:
    unary = {name: grpc.unary_unary_rpc_method_handler(getattr(plain, name)) for name in ("Who", "Refuse", "Later")}
    return grpc.method_handlers_generic_handler(
        SERVICE, {**unary, "Count": grpc.unary_stream_rpc_method_handler(plain.Count)}
    )


def test_plain_methods_added_later_are_served_on_the_pool(settings, clock) -> None:
    settings = dataclasses.replace(settings, max_workers=2)
    app = open_ledger(settings, clock)
    plain = Plain()
    srv, port = create_server(settings, app)
    srv.server.add_generic_rpc_handlers((_handlers(plain),))
    srv.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        who = channel.unary_unary(f"/{SERVICE}/Who")
        assert who(b"", metadata=(("x-ledger-actor", "crm-7"),), timeout=5) == b"crm-7"
        assert plain.threads and all(name.startswith("rpc") for name in plain.threads)
        try:
            channel.unary_unary(f"/{SERVICE}/Refuse")(b"", timeout=5)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "number" in (e.details() or "")
        else:
            raise AssertionError("no error")
        assert list(channel.unary_stream(f"/{SERVICE}/Count")(b"3", timeout=5)) == [b"0", b"1", b"2"]
        # Eight calls wait on a server of two threads; a ninth call is answered meanwhile, at once.
        later = channel.unary_unary(f"/{SERVICE}/Later")
        started = time.monotonic()
        waiting: list[futures.Future[bytes]] = [later.future(b"%d" % i, timeout=10) for i in range(8)]
        time.sleep(0.1)
        assert who(b"", timeout=5)
        assert not any(call.done() for call in waiting)  # answered while all eight wait
        # Each ran again after its wait and answered then; the waits ran together, holding no thread (one
        # after another on the two threads they would take 4 x LATER_SECONDS).
        assert [call.result() for call in waiting] == [b"runs=2"] * 8
        assert time.monotonic() - started < 3 * LATER_SECONDS
    finally:
        channel.close()
        srv.stop(None).wait()
        app.close()
        app.vault.store.close()
