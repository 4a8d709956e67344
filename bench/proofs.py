"""What the proofs cost: ActivateSim (64 callers) and import (ImportCommands) with the Merkle tree on and
off (``LEDGER_MERKLE_TREE=0``), each run on a fresh database by a real ``ledger serve``, in interleaved
rounds (best of each, so a burst of other work on the machine does not decide the ratio); then, on the
last database, inclusion-proof generation and verification per event and the signing of a head.

    python -m bench.proofs --calls 2000 --rounds 3 [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

The tree must cost less than 15% of either rate: the target of the "tree on" rows is ratio >= 0.85
against the "tree off" rate as ceiling.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import grpc
import orjson

from bench.bench_commands import ROOT, free_port, run_phase, start_server
from bench.rows import Rows
from bench.workloads import activate_calls, prepare_subscribers
from ledger.v1 import lifecycle_service_pb2_grpc


def rates(db: str, workdir: Path, tree: bool, calls: int, tag: str) -> tuple[float, float]:
    """(import commands/s, ActivateSim/s at 64 callers) of a server on ``db`` with the tree on or off."""
    os.environ["LEDGER_MERKLE_TREE"] = "1" if tree else "0"
    master_key = os.environ["LEDGER_MASTER_KEY"]
    # Also records a tree turned off in the store (a server refuses to run with it off otherwise).
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "ledger", "migrate", "--db", db], check=True, env=env, capture_output=True)
    port = free_port()
    server = start_server(workdir, port, db, master_key)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    lifecycle = lifecycle_service_pb2_grpc.LifecycleServiceStub(channel)
    try:
        t0 = time.perf_counter()
        numbers, sids = prepare_subscribers(lifecycle, tag, calls, 2_000_000)
        import_rate = (2 * calls + (calls + 4999) // 5000) / (time.perf_counter() - t0)
        elapsed, _ = run_phase(activate_calls(lifecycle, tag, numbers, sids, 2_000_000), 64)
        return import_rate, calls / elapsed
    finally:
        channel.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def proof_rates(db: str, samples: int, rows: Rows, label: str) -> None:
    """Inclusion proofs generated and verified per second, read-only from ``db``, and one head signed."""
    from ledger.adapters import open_read_only
    from ledger.config import StoreConfig
    from ledger.proofs.merkle import event_leaf_hash, verify_inclusion
    from ledger.proofs.publish import publish

    log = open_read_only(StoreConfig.from_url(db))
    try:
        size = log.proofs.tree_size()
        events = {e.position: e for e in log.reader.chained()}
        picks = random.Random(5).sample(range(1, size + 1), min(samples, size))
        t0 = time.perf_counter()
        paths = [log.proofs.inclusion(p - 1, size) for p in picks]
        made = len(picks) / (time.perf_counter() - t0)
        root = log.proofs.root(size)
        t0 = time.perf_counter()
        for p, path in zip(picks, paths, strict=True):
            e = events[p]
            leaf = event_leaf_hash(p, e.stream_id, e.version, e.topic, e.state)
            if not verify_inclusion(leaf, p - 1, size, path, root):
                raise RuntimeError(f"the inclusion proof of position {p} does not verify: the figures are void")
        checked = len(picks) / (time.perf_counter() - t0)
    finally:
        log.close()
    rows.add(f"{label} inclusion proofs generated ({size} leaves)", made, "proofs/s", None, "O(log n) reads each")
    rows.add(f"{label} inclusion proofs verified", checked, "proofs/s", None, "")
    if db.startswith("sqlite"):  # the first head over the whole ledger: the most a head ever checks
        from ledger.bootstrap import load_head_signer, open_ledger
        from ledger.config import Settings

        settings = Settings.build(db=db, environ={**os.environ, "LEDGER_MERKLE_TREE": "1"})  # a tree-on store
        app = open_ledger(settings)
        try:
            if app.proofs is None:
                raise RuntimeError("this store keeps no signed heads")
            t0 = time.perf_counter()
            head = publish(app.proofs, app.reader, load_head_signer(settings), app.batch_key)
            rows.add(f"{label} first signed head over {head.size} events", time.perf_counter() - t0, "s", None, "")
        finally:
            app.close()
            app.vault.store.close()


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="commands per measurement (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of tree on and off (default 3)")
    parser.add_argument("--samples", type=int, default=2000, help="inclusion proofs to generate and verify")
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server: measure there too")
    parser.add_argument("--no-sqlite", action="store_true", help="with --postgres: measure PostgreSQL only")
    parser.add_argument("--json", type=Path, help="write the rows as JSON to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("LEDGER_MASTER_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
    rows = Rows()
    with tempfile.TemporaryDirectory(prefix="ledger-bench-proofs-") as tmp:
        stores: list[tuple[str, object]] = []
        if not (args.no_sqlite and args.postgres):
            stores.append(("SQLite", lambda n: f"sqlite:///{tmp}/ledger-{n}.db"))
        if args.postgres:
            import psycopg

            def pg(n: str) -> str:
                name = f"bench_proofs_{os.getpid()}_{n.replace('-', '_')}"
                with psycopg.connect(args.postgres, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {name}")
                return args.postgres.rsplit("/", 1)[0] + f"/{name}"

            stores.append(("PostgreSQL", pg))
        for label, make in stores:
            runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            last_db = ""
            for r in range(args.rounds):
                for tree in (True, False):
                    db = make(f"{r}-{int(tree)}")  # type: ignore[operator]
                    imported, activated = rates(db, Path(tmp), tree, args.calls, f"{label}-{r}-{int(tree)}")
                    runs[tree].append((imported, activated))
                    print(
                        f"  {label} round {r + 1} tree {'on' if tree else 'off'}: import {imported:,.0f} cmd/s, "
                        f"ActivateSim {activated:,.0f} cmd/s",
                        flush=True,
                    )
                    if tree:
                        last_db = db
            for what, k in (("import commands/s", 0), ("ActivateSim 64 callers", 1)):
                on, off = ([r[k] for r in runs[t]] for t in (True, False))
                rows.add(f"{label} {what}, tree on (vs off), best", max(on), "cmd/s", max(off), ">= 0.85")
                rows.add(f"{label} {what}, tree on (vs off), median", median(on), "cmd/s", median(off), ">= 0.85")
            proof_rates(last_db, args.samples, rows, label)
    os.environ.pop("LEDGER_MERKLE_TREE", None)
    command = "python -m bench.proofs " + shlex.join(argv if argv is not None else sys.argv[1:])
    print(f"reproduce: {command}")
    if args.json:
        args.json.write_bytes(orjson.dumps({"command": command, "rows": rows.rows}, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
