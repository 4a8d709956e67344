"""What metrics and JSON access logs cost, in one run: ActivateSim and BatchCheck against two servers of
this tree, one with ``--metrics`` and ``--log-format json`` (an access line per call, at INFO) and one
with both off (``--access-log off``, warnings only).

    python -m bench.observability --calls 1000 --checks 20000

Each server runs on a fresh SQLite database of its own, with the same numbers and subscribers; the
phases alternate between the two (best of ``--runs``), so a burst of other work on the machine weighs on
both alike. The servers' stderr goes to /dev/null: each access line is formatted and written all the same.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import signal
import sys
import tempfile
from pathlib import Path

import grpc

from bench.bench_commands import free_port, run_phase, start_server
from bench.workloads import activate_calls, batch_check_rate, prepare_subscribers
from ledger.cli import one_line_errors
from ledger.v1 import lifecycle_service_pb2_grpc, recycling_service_pb2_grpc

LEVELS = (8, 64)
BATCHES = (100, 1000)


class Server:
    """One server under measurement and its stubs."""

    def __init__(self, name: str, workdir: Path, master_key: str, extra: tuple[str, ...]) -> None:
        self.name = name
        workdir.mkdir()
        port = free_port()
        self.proc = start_server(workdir, port, f"sqlite:///{workdir}/ledger.db", master_key, extra=extra)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.lifecycle = lifecycle_service_pb2_grpc.LifecycleServiceStub(self.channel)
        self.recycling = recycling_service_pb2_grpc.RecyclingServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


@one_line_errors("bench.observability")
def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="ActivateSim calls per level (default 1000)")
    parser.add_argument("--checks", type=int, default=20_000, help="numbers checked per batch size (default 20000)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each phase; the best counts (default 2)")
    args = parser.parse_args(argv)
    master_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="ledger-observability-") as tmp:
        on = (
            "--log-level", "INFO", "--log-format", "json", "--access-log", "on",
            "--metrics", f"127.0.0.1:{free_port()}",
        )  # fmt: skip
        servers = [
            Server("off", Path(tmp) / "off", master_key, ("--access-log", "off")),
            Server("metrics + JSON access log", Path(tmp) / "on", master_key, on),
        ]
        rows: list[tuple[str, list[float]]] = []
        try:
            for level in LEVELS:
                first = 1_000_000 * level
                prepared = [
                    prepare_subscribers(s.lifecycle, f"a{level}", args.calls * args.runs, first) for s in servers
                ]
                rates = [0.0] * len(servers)
                for run in range(args.runs):
                    part = slice(run * args.calls, (run + 1) * args.calls)
                    for i, server in enumerate(servers):
                        numbers, sids = prepared[i]
                        sims = first + run * args.calls
                        calls = activate_calls(server.lifecycle, f"a{level}-{run}", numbers[part], sids[part], sims)
                        rates[i] = max(rates[i], args.calls / run_phase(calls, level)[0])
                rows.append((f"ActivateSim, {level} callers (cmd/s)", rates))
            numbers = prepared[0][0]
            checks = [numbers[i % len(numbers)] for i in range(args.checks)]
            for batch in BATCHES:
                rates = [0.0] * len(servers)
                for _ in range(args.runs):
                    for i, server in enumerate(servers):
                        rates[i] = max(rates[i], batch_check_rate(server.recycling, checks, batch))
                rows.append((f"BatchCheck, {batch} per batch (numbers/s)", rates))
        finally:
            for server in servers:
                server.close()
    print(f"{'':42} {servers[0].name:>12} {servers[1].name:>28} {'cost':>8}")
    for name, (off, on_rate) in rows:
        print(f"{name:42} {off:12.0f} {on_rate:28.0f} {(off - on_rate) / off:8.1%}")
    print("reproduce: python -m bench.observability " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
