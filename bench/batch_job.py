"""The batch job beside the RPC it calls: ``scripts.recycling_check`` end to end on a CSV of the dataset's
numbers (output written, progress bar on) against a plain client streaming the same queries to BatchCheck
as pre-built requests of 1,000, in the same process, run after run, interleaved.

    python -m bench.batch_job --rows 200000              # a fresh 5,000-number ledger, about a minute
    python -m bench.batch_job --rows 1000000 --rounds 2

Each gives rows per second (the best of ``--rounds``) and the client process's CPU seconds per 100,000
rows (user + system, every thread, the least of the rounds): on a machine shared with other work the CPU
figure is the steadier one. The ratio's target is >= 0.8.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import grpc

from bench.bench_commands import free_port, start_server
from bench.rows import Rows
from bench.workloads import settle
from ledger.cli import one_line_errors
from ledger.v1 import ledger_pb2, lifecycle_service_pb2_grpc, recycling_service_pb2_grpc
from ledger.v1 import recycling_service_pb2 as rpb
from scripts import generate_dataset, recycling_check
from scripts.dataset import identifiers as synthetic

BATCH = 1000


def write_csv(path: Path, numbers: int, count: int, last_day: date, days: int, seed: int = 5) -> list[tuple[str, str]]:
    """A CSV of ``count`` rows (number, since_date, ref) over the dataset's numbers; returns the queries."""
    pick = random.Random(seed)
    queries = [
        (synthetic.msisdn(pick.randrange(numbers)), (last_day - timedelta(days=pick.randrange(days))).isoformat())
        for _ in range(count)
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write("number,since_date,ref\n")
        f.writelines(f"{n},{d},r{i}\n" for i, (n, d) in enumerate(queries))
    return queries


def plain_client(stub: recycling_service_pb2_grpc.RecyclingServiceStub, requests: list[rpb.BatchCheckRequest]) -> int:
    """Stream pre-built requests and read every answer; returns the numbers answered."""
    return sum(len(r.results) for r in stub.BatchCheck(iter(requests), timeout=3600))


def measure(target: str, source: Path, out: Path, queries: list[tuple[str, str]], rounds: int) -> dict[str, Any]:
    """Interleaved rounds of the plain client and the job: best rows/s and least CPU seconds of each, and
    each round's ratio (the job's rate over the plain client's just before it)."""
    channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)])
    stub = recycling_service_pb2_grpc.RecyclingServiceStub(channel)
    requests = [
        rpb.BatchCheckRequest(
            queries=[ledger_pb2.CheckQuery(number=n, since_date=d) for n, d in queries[i : i + BATCH]]
        )
        for i in range(0, len(queries), BATCH)
    ]
    best = {"plain": 0.0, "job": 0.0}
    cpu = {"plain": float("inf"), "job": float("inf")}
    rates: dict[str, float] = {}
    ratios: list[float] = []
    args = [str(source), "-o", str(out), "--target", target, "--batch-size", str(BATCH)]
    try:
        for _ in range(rounds):
            for kind in ("plain", "job"):
                c0, t0 = time.process_time(), time.perf_counter()
                if kind == "plain":
                    answered = plain_client(stub, requests)
                else:
                    # The progress bar is drawn, to a file nobody reads rather than over this table.
                    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
                        code = recycling_check.main(args)
                    if code != 0:
                        raise RuntimeError(f"recycling_check exited {code}")
                    answered = len(queries)
                wall, used = time.perf_counter() - t0, time.process_time() - c0
                if answered != len(queries):
                    raise RuntimeError(f"{kind}: {answered} of {len(queries)} answered")
                rates[kind] = answered / wall
                best[kind] = max(best[kind], rates[kind])
                cpu[kind] = min(cpu[kind], used)
            ratios.append(rates["job"] / rates["plain"])
    finally:
        channel.close()
    return {
        "plain": best["plain"],
        "job": best["job"],
        "plain_cpu": cpu["plain"],
        "job_cpu": cpu["job"],
        "ratios": ratios,
    }


def batch_job_rows(label: str, target: str, numbers: int, count: int, workdir: Path, rows: Rows, rounds: int) -> None:
    """The job's rows of the table, on a ledger of ``numbers`` numbers already loaded and settled."""
    source, out = workdir / "batch-job.csv", workdir / "batch-job-answers.csv"
    queries = write_csv(source, numbers, count, date(2026, 10, 31), 730)
    got = measure(target, source, out, queries, rounds)
    per = 100_000 / count * 1000  # milliseconds per 100,000 rows
    rows.add(f"{label} recycling_check, {count:,} rows", got["job"], "rows/s", got["plain"], ">= 0.8")
    rows.add(f"{label} recycling_check CPU per 100k rows", got["job_cpu"] * per, "ms", got["plain_cpu"] * per, "", True)
    print(f"  (ratio in each round: {', '.join(f'{r:.2f}' for r in got['ratios'])})", flush=True)
    out.unlink(missing_ok=True)
    source.unlink(missing_ok=True)


@one_line_errors("batch_job")
def main(argv: list[str] | None = None) -> int:
    """Load a fresh ledger on SQLite and print the job's rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="CSV rows (default 200000)")
    parser.add_argument("--numbers", type=int, default=5000, help="dataset numbers (default 5000)")
    parser.add_argument("--years", type=float, default=2.0, help="simulated years of history (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each (default 3)")
    parser.add_argument("--target", help="a running server already holding the dataset (default: start one)")
    args = parser.parse_args(argv)
    rows = Rows()
    with tempfile.TemporaryDirectory(prefix="bench-job-") as tmp:
        workdir = Path(tmp)
        if args.target:
            batch_job_rows("given server", args.target, args.numbers, args.rows, workdir, rows, args.rounds)
            return 0
        master_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        os.environ["LEDGER_MASTER_KEY"] = master_key
        port = free_port()
        server = start_server(workdir, port, f"sqlite:///{workdir}/ledger.db", master_key)
        target = f"127.0.0.1:{port}"
        try:
            t0 = time.perf_counter()
            generate_dataset.main(
                ["--target", target, "--numbers", str(args.numbers), "--years", str(args.years),
                 "--seed", "7", "--end", "2026-11-01", "--no-progress"]
            )  # fmt: skip
            channel = grpc.insecure_channel(target)
            settle(
                lifecycle_service_pb2_grpc.LifecycleServiceStub(channel),
                recycling_service_pb2_grpc.RecyclingServiceStub(channel),
            )
            channel.close()
            print(f"sqlite: dataset of {args.numbers} numbers in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
            batch_job_rows("sqlite", target, args.numbers, args.rows, workdir, rows, args.rounds)
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
