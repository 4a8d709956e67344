"""Benchmark lifecycle commands over gRPC against a real ``ledger serve`` process on a fresh SQLite file.

Prints one table (commands per second and latency percentiles per RPC and concurrency) and, with
``--json FILE``, writes it as JSON. Example:

    python -m bench.bench_commands --numbers 2000 --concurrency 1,8
"""

from __future__ import annotations

import argparse
import base64
import functools
import itertools
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import orjson

from ledger.cli import one_line_errors
from ledger.v1 import ledger_pb2, lifecycle_service_pb2_grpc
from ledger.v1 import lifecycle_service_pb2 as lpb
from scripts.dataset.identifiers import iccid, imsi, resident_id

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    workdir: Path,
    port: int,
    db: str,
    master_key: str,
    root: Path = ROOT,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[str]:
    """Start ``python -m ledger serve`` on ``db`` (the code in ``root``, with ``extra`` arguments) and wait
    until it answers."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledger",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--db",
            db,
            "--log-level",
            "WARNING",
            *extra,
        ],
        cwd=workdir,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(root), "LEDGER_MASTER_KEY": master_key},
        stderr=subprocess.DEVNULL,
        text=True,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=60)
    channel.close()
    return proc


def run_phase(calls: list[Callable[[], Any]], concurrency: int) -> tuple[float, list[float]]:
    """Run the calls with that many threads; returns (elapsed seconds, per-call latencies)."""
    latencies: list[float] = []

    def timed(call: Callable[[], Any]) -> None:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, calls))
    return time.perf_counter() - start, latencies


def pct(values: list[float], q: float) -> float:
    """The q-th percentile in milliseconds."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


@one_line_errors("bench_commands")
def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description="Benchmark lifecycle commands over gRPC (SQLite store).")
    parser.add_argument("--numbers", type=int, default=2000, help="numbers per concurrency level (default 2000)")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated caller counts (default 1,8)")
    parser.add_argument("--processes", type=int, default=1, help="server processes on the same store (default 1)")
    parser.add_argument(
        "--postgres", help="admin URL of a PostgreSQL server; a fresh database is created there (default: SQLite)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    rows: list[dict[str, Any]] = []
    ids = itertools.count(1)
    master_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        if args.postgres:
            import psycopg

            name = f"bench_{os.getpid()}_{int(time.time())}"
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            db = args.postgres.rsplit("/", 1)[0] + f"/{name}"
            subprocess.run(
                [sys.executable, "-m", "ledger", "migrate", "--db", db],
                check=True,
                capture_output=True,
                env={**os.environ, "PYTHONPATH": str(ROOT), "LEDGER_MASTER_KEY": master_key},
            )
        else:
            db = f"sqlite:///{tmp}/ledger.db"
        ports = [free_port() for _ in range(args.processes)]
        procs = [start_server(Path(tmp), port, db, master_key) for port in ports]
        channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for port in ports]
        stubs = [lifecycle_service_pb2_grpc.LifecycleServiceStub(c) for c in channels]
        store = "PostgreSQL" if args.postgres else "SQLite"
        try:
            for level in levels:
                base = next(ids) * 1_000_000
                numbers = [f"+86139{base // 1_000_000:02d}{i:06d}" for i in range(args.numbers)]
                for chunk in range(0, len(numbers), 5000):
                    stubs[0].ProvisionNumbers(
                        lpb.ProvisionNumbersRequest(
                            request_id=f"prov-{base}-{chunk}", numbers=numbers[chunk : chunk + 5000]
                        )
                    )
                sids: list[str] = [""] * len(numbers)

                def register(i: int, base: int = base, sids: list[str] = sids) -> None:
                    sids[i] = (
                        stubs[i % len(stubs)]
                        .RegisterSubscriber(
                            lpb.RegisterSubscriberRequest(
                                request_id=f"reg-{base}-{i}",
                                full_name=f"Bench {i}",
                                id_type=ledger_pb2.ID_TYPE_RESIDENT_ID_CARD,
                                id_number=resident_id(base // 1_000_000 * 50_000 + i),
                            )
                        )
                        .subscriber_id
                    )

                def verify(i: int, base: int = base, sids: list[str] = sids) -> None:
                    stubs[i % len(stubs)].VerifyIdentity(
                        lpb.VerifyIdentityRequest(
                            request_id=f"ver-{base}-{i}",
                            subscriber_id=sids[i],
                            method=ledger_pb2.VERIFICATION_METHOD_ID_CARD_READER,
                            channel="retail",
                            agent_id="bench",
                            evidence_ref="e",
                        )
                    )

                def activate(i: int, base: int = base, numbers: list[str] = numbers, sids: list[str] = sids) -> None:
                    sim = iccid(base + i)
                    stubs[i % len(stubs)].ActivateSim(
                        lpb.ActivateSimRequest(
                            request_id=f"act-{base}-{i}",
                            number=numbers[i],
                            subscriber_id=sids[i],
                            iccid=sim,
                            imsi=imsi(base + i),
                            channel="retail",
                            agent_id="bench",
                        )
                    )

                for name, fn in (
                    ("RegisterSubscriber", register),
                    ("VerifyIdentity", verify),
                    ("ActivateSim", activate),
                ):
                    calls: list[Callable[[], Any]] = [functools.partial(fn, i) for i in range(args.numbers)]
                    elapsed, lat = run_phase(calls, level)
                    rows.append(
                        {
                            "store": store,
                            "processes": args.processes,
                            "rpc": name,
                            "callers": level,
                            "calls": args.numbers,
                            "per_second": round(args.numbers / elapsed, 1),
                            "p50_ms": round(pct(lat, 50), 2),
                            "p99_ms": round(pct(lat, 99), 2),
                            "mean_ms": round(1000 * statistics.fmean(lat), 2),
                        }
                    )
        finally:
            for channel in channels:
                channel.close()
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
    command = "python -m bench.bench_commands " + shlex.join(argv if argv is not None else sys.argv[1:])
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"store {store}; {args.processes} server process(es)"
    )
    print(f"{'rpc':<20} {'callers':>7} {'calls':>6} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(
            f"{r['rpc']:<20} {r['callers']:>7} {r['calls']:>6} {r['per_second']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8}"
        )
    print(f"reproduce: {command}")
    if args.json:
        args.json.write_bytes(orjson.dumps({"command": command, "rows": rows}, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
