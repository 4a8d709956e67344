"""SIM swap answers before and after a change, in one run, on copies of one loaded SQLite ledger.

Another commit's server (``--before``) and this tree's take turns, each on a fresh copy of the folder a
server loaded (``scripts.generate_dataset``), each waited on until its start-up work is done; each turn
streams BatchCheckSimSwap at 1,000 per batch over rounds of numbers no earlier round asked (the server
keeps a bounded cache of parsed numbers: a number asked again would measure the cache), beside the
fastest bare server answering the same requests.

    LEDGER_MASTER_KEY=K python -m bench.sim_swaps --sqlite-template DIR --numbers 100000 --before 61dd63c~1
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import grpc

from bench.bare import KINDS, start_bare
from bench.bench_commands import ROOT, free_port, start_server
from bench.edges import checkout
from bench.workloads import batch_sim_swap_rate, wait_idle
from ledger.cli import one_line_errors
from ledger.v1 import recycling_service_pb2_grpc
from scripts.dataset import identifiers as synthetic


def _turn(root: Path, template: Path, workdir: Path, master_key: str, rounds: list[list[str]]) -> list[float]:
    """Numbers/s of each round against a server of ``root`` on a fresh copy of ``template``."""
    shutil.copytree(template, workdir)
    port = free_port()
    server = start_server(workdir, port, f"sqlite:///{workdir}/ledger.db", master_key, root)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)])
    try:
        wait_idle(server.pid)
        stub = recycling_service_pb2_grpc.RecyclingServiceStub(channel)
        return [batch_sim_swap_rate(stub, numbers, 1000) for numbers in rounds]
    finally:
        channel.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(workdir)


@one_line_errors("bench.sim_swaps")
def main(argv: list[str] | None = None) -> int:
    """Measure and print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite-template", required=True, type=Path, metavar="DIR", help="a loaded ledger's folder")
    parser.add_argument("--numbers", type=int, required=True, help="the numbers the dataset holds")
    parser.add_argument("--before", default="main", help="the commit whose server is the baseline (default main)")
    parser.add_argument("--after", help="the commit measured against it (default: this tree)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per turn (default 3)")
    parser.add_argument("--per-round", type=int, default=30_000, help="numbers per round (default 30000)")
    parser.add_argument("--turns", type=int, default=2, help="turns of each server (default 2)")
    args = parser.parse_args(argv)
    master_key = os.environ.get("LEDGER_MASTER_KEY")
    if not master_key:
        raise SystemExit("set LEDGER_MASTER_KEY to the key the dataset was loaded with")
    if args.rounds * args.per_round > args.numbers:
        raise SystemExit("--rounds x --per-round must not exceed --numbers (each round asks numbers not asked before)")
    numbers = [synthetic.msisdn(i) for i in range(args.numbers)]
    random.Random(11).shuffle(numbers)
    rounds = [numbers[r * args.per_round : (r + 1) * args.per_round] for r in range(args.rounds)]
    bares = [start_bare(kind) for kind in KINDS]
    after = f"after ({args.after or 'this tree'})"
    results: dict[str, list[float]] = {f"before ({args.before})": [], after: []}
    try:
        with tempfile.TemporaryDirectory(prefix="ledger-sim-swaps-") as tmp:
            for side in ("before", "after"):
                (Path(tmp) / side).mkdir()
            trees = {
                f"before ({args.before})": checkout(args.before, Path(tmp) / "before"),
                after: checkout(args.after, Path(tmp) / "after") if args.after else ROOT,
            }
            for turn in range(args.turns):
                for i, (name, root) in enumerate(trees.items()):
                    workdir = Path(tmp) / f"ledger-{turn}-{i}"
                    results[name] += _turn(root, args.sqlite_template, workdir, master_key, rounds)
            ceiling = 0.0
            for _, address in bares:
                with grpc.insecure_channel(address) as channel:
                    stub = recycling_service_pb2_grpc.RecyclingServiceStub(channel)
                    ceiling = max([ceiling] + [batch_sim_swap_rate(stub, numbers, 1000) for numbers in rounds])
    finally:
        for bare, _ in bares:
            bare.send_signal(signal.SIGTERM)
            bare.wait(timeout=30)
    print(f"BatchCheckSimSwap, 1,000 per batch, numbers/s (each round {args.per_round:,} numbers not asked before)")
    for name, rates in results.items():
        print(f"  {name:32} {min(rates):9,.0f} - {max(rates):9,.0f}   ({max(rates) / ceiling:.2f} of bare)")
    print(f"  {'bare server (fastest)':32} {ceiling:9,.0f}")
    print(
        "reproduce: LEDGER_MASTER_KEY=K python -m bench.sim_swaps "
        + " ".join(argv if argv is not None else sys.argv[1:])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
