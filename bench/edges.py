"""The serving edge before and after a change, in one run: ActivateSim and BatchCheck against a server
built from another commit (the edge as it was) and against this tree, each beside the fastest bare
server (the faster of a sync and a grpc.aio one, measured alongside).

    python -m bench.edges --before f79b657 --calls 1000 --checks 20000

Each server runs on a fresh SQLite database of its own (``--postgres ADMIN_URL``: a fresh PostgreSQL
database), with the same numbers and subscribers; the phases alternate between the two servers (best of
``--runs``), so a burst of other work on the machine weighs on both alike. ActivateSim rows also give each
server's CPU time per command (user and system, every thread of its process, and on PostgreSQL its
database's backends: robust to other work on the machine, unlike the rates) and the p50 latency, the least
of the runs; ``--checks 0`` leaves BatchCheck out. A read-your-writes row gives the p50 of a CheckNumber that
waits (``min_position``) for the command acknowledged just before it.

A lever of this tree's server is measured against the same commit without it (``--before HEAD``):
``--after-args='--workers 2' --connections 8`` (the calls spread over eight connections to each server),
``--after-args=--no-projections --after-project`` (the read models in a process of their own, whose CPU
counts as the server's).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import platform
import shlex
import signal
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import grpc

from bench.bare import KINDS, start_bare
from bench.bench_commands import ROOT, free_port, pct, run_phase, start_server
from bench.http import cpu_seconds, server_cpu
from bench.workloads import activate_calls, batch_check_rate, prepare_subscribers, read_your_writes_latency
from ledger.cli import one_line_errors
from ledger.v1 import lifecycle_service_pb2_grpc, recycling_service_pb2_grpc

BATCHES = (100, 1000, 10_000)


def checkout(ref: str, into: Path) -> Path:
    """The tree of ``ref`` (a commit of this repository), unpacked into ``into``."""
    archive = into / "before.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter=_tree_member)
    return into / "tree"


def _tree_member(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """A member of a commit's tree as tarfile's data filter passes it; a link to an absolute path (a few
    commits hold a stray virtualenv link) is left out rather than failing the whole checkout."""
    if member.issym() and member.linkname.startswith("/"):
        return None
    return tarfile.data_filter(member, path)


class Edge:
    """One server under measurement and its stubs, on a fresh SQLite file, or on a fresh database of the
    PostgreSQL server at ``postgres`` (an admin URL)."""

    def __init__(
        self,
        name: str,
        root: Path,
        workdir: Path,
        master_key: str,
        env: dict[str, str] | None = None,
        postgres: str | None = None,
        extra: tuple[str, ...] = (),
        project: bool = False,
    ) -> None:
        self.name = name
        workdir.mkdir()
        port = free_port()
        self.postgres, self.database = postgres, f"edge_{os.getpid()}_{workdir.name}"
        db = f"sqlite:///{workdir}/ledger.db"
        if postgres:
            import psycopg

            with psycopg.connect(postgres, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {self.database}")
            db = postgres.rsplit("/", 1)[0] + f"/{self.database}"
            subprocess.run(
                [sys.executable, "-m", "ledger", "migrate", "--db", db],
                check=True,
                capture_output=True,
                cwd=workdir,
                env={**os.environ, **(env or {}), "PYTHONPATH": str(root), "LEDGER_MASTER_KEY": master_key},
            )
        self.db = db
        self.proc = start_server(workdir, port, db, master_key, root, env, extra)
        # The read models' own process beside a ``--no-projections`` server, its CPU counted as the server's.
        self.projector = (
            subprocess.Popen(
                [sys.executable, "-m", "ledger", "project", "--db", db],
                cwd=workdir,
                env={**os.environ, **(env or {}), "PYTHONPATH": str(root), "LEDGER_MASTER_KEY": master_key},
                stderr=subprocess.DEVNULL,
            )
            if project
            else None
        )
        self.address = f"127.0.0.1:{port}"
        self.channel = grpc.insecure_channel(self.address)
        self.lifecycle = lifecycle_service_pb2_grpc.LifecycleServiceStub(self.channel)
        self.recycling = recycling_service_pb2_grpc.RecyclingServiceStub(self.channel)

    def cpu(self) -> float:
        """CPU seconds the server has used so far (with its workers, its projection process and, on
        PostgreSQL, its database's backends)."""
        pids = _tree(self.proc.pid) + (_tree(self.projector.pid) if self.projector else [])
        used = server_cpu(pids[0], self.db)
        for pid in pids[1:]:
            with contextlib.suppress(OSError):  # ended meanwhile
                used += cpu_seconds(pid)
        return used

    def close(self) -> None:
        self.channel.close()
        for proc in (self.proc, self.projector):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)


def _tree(pid: int) -> list[int]:
    """``pid`` and the processes it started, and theirs (Linux)."""
    found = [pid]
    for parent in found:
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            for task in Path(f"/proc/{parent}/task").iterdir():
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _stubs(address: str, connection: int = 0) -> tuple[Any, Any, grpc.Channel]:
    channel = grpc.insecure_channel(address, options=[("ledger.bench.connection", connection)])
    return (
        lifecycle_service_pb2_grpc.LifecycleServiceStub(channel),
        recycling_service_pb2_grpc.RecyclingServiceStub(channel),
        channel,
    )


@one_line_errors("bench.edges")
def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="the commit whose edge is the baseline (default main)")
    parser.add_argument("--calls", type=int, default=1000, help="ActivateSim calls per level (default 1000)")
    parser.add_argument(
        "--checks", type=int, default=20_000, help="numbers checked per batch size (default 20000; 0: no BatchCheck)"
    )
    parser.add_argument("--levels", default="1,8,64", help="ActivateSim caller counts (default 1,8,64)")
    parser.add_argument(
        "--postgres", metavar="ADMIN_URL", help="each server on a fresh database there (CPU: server and backends)"
    )
    parser.add_argument("--runs", type=int, default=2, help="runs of each phase; the best counts (default 2)")
    parser.add_argument(
        "--after-env", action="append", default=[], metavar="NAME=VALUE", help="environment of this tree's server"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=1,
        help="ActivateSim calls spread over this many connections to each server (default 1; more for --workers)",
    )
    parser.add_argument(
        "--after-args",
        default="",
        metavar="ARGS",
        help="more `ledger serve` arguments for this tree's server (as one string: --after-args='--workers 2')",
    )
    parser.add_argument(
        "--after-project",
        action="store_true",
        help="run `ledger project` beside this tree's server (give it --after-args=--no-projections)",
    )
    args = parser.parse_args(argv)
    master_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    bares = [start_bare(kind) for kind in KINDS]
    with tempfile.TemporaryDirectory(prefix="ledger-edges-") as tmp:
        before_root = checkout(args.before, Path(tmp))
        edges = [
            Edge(f"before ({args.before})", before_root, Path(tmp) / "before", master_key, postgres=args.postgres),
            Edge(
                "after (this tree)",
                ROOT,
                Path(tmp) / "after",
                master_key,
                dict(e.split("=", 1) for e in args.after_env),
                args.postgres,
                tuple(shlex.split(args.after_args)),
                args.after_project,
            ),
        ]
        bare_stubs = [_stubs(address) for _, address in bares]
        # Each connection its own (a channel argument of its own keeps gRPC from sharing one): the kernel
        # spreads connections, not calls, over the processes of a ``--workers`` server.
        opened = [
            [_stubs(address, n) for n in range(args.connections)] if args.connections > 1 else []
            for address in [e.address for e in edges] + [address for _, address in bares]
        ]
        spreads = [[lifecycle for lifecycle, _, _ in stubs] for stubs in opened]
        try:
            rows: list[tuple[str, list[float], list[float]]] = []
            costs: list[tuple[str, list[float], list[float]]] = []
            for level in [int(n) for n in args.levels.split(",")]:
                first = 1_000_000 * level
                prepared = [prepare_subscribers(e.lifecycle, f"a{level}", args.calls * args.runs, first) for e in edges]
                rates = [0.0] * len(edges)
                cpu = [float("inf")] * len(edges)
                p50 = [float("inf")] * len(edges)
                ceilings = [0.0] * len(KINDS)
                bare_cpu = [float("inf")] * len(KINDS)
                for run in range(args.runs):
                    part = slice(run * args.calls, (run + 1) * args.calls)
                    for i, edge in enumerate(edges):
                        numbers, sids = prepared[i]
                        sims = first + run * args.calls  # each activation with a SIM of its own
                        calls = activate_calls(
                            edge.lifecycle, f"a{level}-{run}", numbers[part], sids[part], sims, spreads[i]
                        )
                        used = edge.cpu()
                        elapsed, latencies = run_phase(calls, level)
                        used = edge.cpu() - used
                        rates[i] = max(rates[i], args.calls / elapsed)
                        cpu[i] = min(cpu[i], 1000 * used / args.calls)
                        p50[i] = min(p50[i], pct(latencies, 50))
                    numbers, sids = prepared[0]
                    for k, (lifecycle, _, _) in enumerate(bare_stubs):
                        calls = activate_calls(
                            lifecycle, "bare", numbers[part], sids[part], first, spreads[len(edges) + k]
                        )
                        used = cpu_seconds(bares[k][0].pid)
                        elapsed = run_phase(calls, level)[0]
                        bare_cpu[k] = min(bare_cpu[k], 1000 * (cpu_seconds(bares[k][0].pid) - used) / args.calls)
                        ceilings[k] = max(ceilings[k], args.calls / elapsed)
                rows.append((f"ActivateSim, {level} callers (cmd/s)", rates, ceilings))
                costs.append((f"ActivateSim, {level} callers: server CPU ms/cmd", cpu, bare_cpu))
                costs.append((f"ActivateSim, {level} callers: p50 ms", p50, []))
            waits = [float("inf")] * len(edges)
            for run in range(args.runs):
                fresh = [f"+86137{run:02d}{k:06d}" for k in range(100)]
                for i, edge in enumerate(edges):
                    latency = read_your_writes_latency(edge.lifecycle, edge.recycling, f"w{run}", fresh)
                    waits[i] = min(waits[i], latency)
            costs.append(("read-your-writes CheckNumber: p50 ms", waits, []))
            numbers = prepared[0][0]
            # One number in ten unknown here (a national sweep asks of numbers other operators serve).
            checks = [numbers[i % len(numbers)] if i % 10 else f"+86139{i:08d}" for i in range(args.checks)]
            for batch in BATCHES if args.checks else ():
                rates = [0.0] * len(edges)
                cpu = [float("inf")] * len(edges)
                ceilings = [0.0] * len(KINDS)
                for _ in range(args.runs):
                    for i, edge in enumerate(edges):
                        used = edge.cpu()
                        rates[i] = max(rates[i], batch_check_rate(edge.recycling, checks, batch))
                        cpu[i] = min(cpu[i], 1_000_000 * (edge.cpu() - used) / len(checks))
                    for k, (_, recycling, _) in enumerate(bare_stubs):
                        ceilings[k] = max(ceilings[k], batch_check_rate(recycling, checks, batch))
                rows.append((f"BatchCheck, {batch} per batch (numbers/s)", rates, ceilings))
                costs.append((f"BatchCheck, {batch} per batch: server CPU ms/1000", cpu, []))
        finally:
            for edge in edges:
                edge.close()
            for _, _, channel in bare_stubs + [stubs for each in opened for stubs in each]:
                channel.close()
            for bare, _ in bares:
                bare.send_signal(signal.SIGTERM)
                bare.wait(timeout=30)
    names = [e.name for e in edges]
    print(f"{'':42} {names[0]:>22} {names[1]:>22}   bare {' / '.join(KINDS)}")
    for name, rates, ceilings in rows:
        best = max(ceilings)
        cells = [f"{r:9.0f} ({r / best:.2f})" for r in rates]
        print(f"{name:42} {cells[0]:>22} {cells[1]:>22}   {' / '.join(f'{c:.0f}' for c in ceilings)}")
    for name, values, bare_values in costs:
        bare_cells = " / ".join(f"{v:.2f}" for v in bare_values)
        print(f"{name:42} {values[0]:>22.2f} {values[1]:>22.2f}   {bare_cells}")
    print("reproduce: python -m bench.edges " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
