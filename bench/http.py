"""The HTTP port measured: CAMARA Number Recycling checks per second at 1, 16 and 64 concurrent keep-alive
httpx clients, with p50 and p99 latency, beside a bare Starlette app on the same server stack (uvicorn, h11,
uvloop) that answers the same route with a constant body: the ceiling, measured in the same run.

    python -m bench.http --numbers 1000 --calls 2000      # a short run on a fresh SQLite ledger

``bench.bench`` runs the same rows (``http_rows``) on each store it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import httpx
import orjson

from bench.bench_commands import ROOT, free_port, start_server
from bench.rows import Rows
from bench.workloads import settle
from ledger.cli import one_line_errors
from ledger.v1 import lifecycle_service_pb2_grpc, recycling_service_pb2_grpc
from scripts import generate_dataset
from scripts.dataset import identifiers as synthetic

NR = "/number-recycling/v0.2/check"
LEVELS = (1, 16, 64)
CONSTANT = b'{"phoneNumberRecycled":false}'


def serve_bare(port: int) -> None:
    """Run the bare app until SIGTERM: the ledger's HTTP stack (uvicorn, h11, uvloop) answering the CAMARA
    check route with a constant body after reading the request's."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def check(request: Request) -> Response:
        await request.body()
        return Response(CONSTANT, media_type="application/json")

    app = Starlette(routes=[Route(NR, check, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="uvloop", http="h11", ws="none", lifespan="off",
        log_config=None, log_level="warning", access_log=False, server_header=False,
    )  # fmt: skip
    uvicorn.Server(config).run()


def start_bare() -> tuple[subprocess.Popen[str], str]:
    """Start the bare app in its own process; returns it and its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.http", "--bare", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(url, NR)
    return proc, url


def wait_for(url: str, path: str, timeout: float = 60) -> None:
    """Wait until ``url`` answers a POST to ``path`` (any status)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.post(url + path, content=b"{}", timeout=5)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


async def _clients(url: str, bodies: list[bytes], level: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    work = iter(bodies)
    headers = {"content-type": "application/json"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=1)) as http:
            for body in work:  # one iterator shared by every client (one loop: no lock)
                start = time.perf_counter()
                response = await http.post(NR, content=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code not in (200, 400, 404):
                    raise RuntimeError(f"unexpected answer {response.status_code}: {response.text[:200]}")

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(level)))
    return time.perf_counter() - start, latencies


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, every thread) a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int, db: str) -> float:
    """CPU seconds a server process has used so far, with its database's backends when ``db`` is a
    PostgreSQL URL (each backend's time while it lives: a connection closed meanwhile is not counted)."""
    used = cpu_seconds(pid)
    if db.startswith("postgresql"):
        import psycopg

        admin, database = db.rsplit("/", 1)
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database])]
        for backend in pids:
            with contextlib.suppress(OSError):  # the backend ended meanwhile
                used += cpu_seconds(backend)
    return used


def check_rate(url: str, bodies: list[bytes], level: int, pid: int) -> tuple[float, float, float, float]:
    """(requests/s, p50 ms, p99 ms, server CPU ms per request) of the CAMARA check over ``bodies`` with
    ``level`` keep-alive clients; ``pid`` is the server's process. The clients share the machine: where they
    are the bottleneck, the CPU the server spends per request still compares the servers."""
    cpu = cpu_seconds(pid)
    elapsed, latencies = asyncio.run(_clients(url, bodies, level))
    cpu = cpu_seconds(pid) - cpu
    latencies.sort()
    return (
        len(bodies) / elapsed,
        1000 * latencies[len(latencies) // 2],
        1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        1000 * cpu / len(bodies),
    )


def http_rows(
    label: str, url: str, pid: int, bare_url: str, bare_pid: int, numbers: int, calls: int, rows: Rows
) -> None:
    """The CAMARA check rows: each level against the bare app, alternating, the best of two runs each."""
    pick = random.Random(25)
    bodies = [
        orjson.dumps({"phoneNumber": synthetic.msisdn(pick.randrange(numbers)), "specifiedDate": "2025-06-01"})
        for _ in range(calls)
    ]
    for level in LEVELS:
        best = bare = (0.0, 0.0, 0.0, 0.0)
        for _ in range(2):
            best = max(best, check_rate(url, bodies, level, pid))
            bare = max(bare, check_rate(bare_url, bodies, level, bare_pid))
        rows.add(f"{label} CAMARA check over HTTP, {level} clients", best[0], "req/s", bare[0], ">= 0.5")
        rows.add(f"{label} CAMARA check p50, {level} clients", best[1], "ms", bare[1], "", inverse=True)
        rows.add(f"{label} CAMARA check p99, {level} clients", best[2], "ms", bare[2], "", inverse=True)
        rows.add(f"{label} CAMARA check server CPU/request, {level} clients", best[3], "ms", bare[3], "",
                 inverse=True)  # fmt: skip


@one_line_errors("bench.http")
def main(argv: list[str] | None = None) -> int:
    """Measure and print the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=1000, help="dataset numbers (default 1000)")
    parser.add_argument("--calls", type=int, default=2000, help="checks per run and level (default 2000)")
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        serve_bare(args.bare)
        return 0
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    bare, bare_url = start_bare()
    rows = Rows()
    master_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    try:
        with tempfile.TemporaryDirectory(prefix="ledger-bench-http-") as tmp:
            port, http = free_port(), free_port()
            db = f"sqlite:///{tmp}/ledger.db"
            server = start_server(Path(tmp), port, db, master_key, extra=("--http", f"127.0.0.1:{http}"))
            try:
                generate_dataset.main(
                    ["--target", f"127.0.0.1:{port}", "--numbers", str(args.numbers), "--seed", "7", "--end",
                     "2026-11-01", "--no-progress"]
                )  # fmt: skip
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    settle(
                        lifecycle_service_pb2_grpc.LifecycleServiceStub(channel),
                        recycling_service_pb2_grpc.RecyclingServiceStub(channel),
                    )
                url = f"http://127.0.0.1:{http}"
                wait_for(url, NR)
                http_rows("SQLite", url, server.pid, bare_url, bare.pid, args.numbers, args.calls, rows)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
    finally:
        bare.send_signal(signal.SIGTERM)
        bare.wait(timeout=30)
    print("reproduce: python -m bench.http " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
