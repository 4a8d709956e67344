"""The read models' rebuild on PostgreSQL beside its ceiling, before and after a change, in one run.

Each run copies a loaded dataset (``CREATE DATABASE ... TEMPLATE``), reads and decodes every event of the
copy (the ceiling: what any projection must do), then rebuilds every view of it with
``scripts.rebuild_projections`` from another commit (``--before``) and from this tree, alternately, each on
a copy of its own. The trees' rebuilt views are then compared table by table (every row and column,
seals included): a faster rebuild must write the same views.

    LEDGER_MASTER_KEY=K python -m bench.rebuild --postgres ADMIN_URL --template ds100k --before main

The template is a database loaded by ``python -m bench.bench ... --load-only NAME`` (or by
``scripts.generate_dataset`` against ``ledger serve``) under the same ``LEDGER_MASTER_KEY``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_commands import ROOT
from bench.ceilings import open_store, raw_select_decode_rate
from bench.edges import checkout
from ledger.cli import one_line_errors
from ledger.config import StoreConfig
from ledger.keys.epoch import default_path

_APPLIED = re.compile(r"applied (\d+) events in ([0-9.]+)s")


def copy_database(admin: str, template: str, name: str, workdir: Path) -> str:
    """A copy of ``template`` named ``name``, with a copy of the template's epoch key file that
    ``LEDGER_EPOCH_KEY_FILE`` then names (the template's own is never touched); returns its URL."""
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
    base = admin.rsplit("/", 1)[0]
    key_file = workdir / f"{name}.epoch.key"
    shutil.copyfile(default_path(StoreConfig.from_url(f"{base}/{template}")), key_file)
    os.environ["LEDGER_EPOCH_KEY_FILE"] = str(key_file)
    return f"{base}/{name}"


def drop_database(admin: str, name: str) -> None:
    """Drop a copy."""
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def rebuild(root: Path, db: str, batch_size: int | None) -> tuple[int, float, float]:
    """Rebuild every view of ``db`` with the code in ``root``: events, the rebuild's seconds as it reports
    them, and the seconds of the whole process (start-up included)."""
    command = [sys.executable, "-m", "scripts.rebuild_projections", "--db", db]
    if batch_size:
        command += ["--batch-size", str(batch_size)]
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the rebuild in {root} failed: {done.stderr.strip()[-500:]}")
    found = _APPLIED.search(done.stdout)
    if found is None:
        raise RuntimeError(f"the rebuild printed no count: {done.stdout!r}")
    return int(found.group(1)), float(found.group(2)), wall


def view_digests(db: str) -> dict[str, tuple[int, str]]:
    """Each serving table's row count and a digest of all its rows in key order (every column)."""
    import psycopg

    from projections.generations import serving_tables

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute('SET search_path TO "ledger_views"')
        digests = {}
        for plain, stored in sorted(serving_tables(conn.cursor()).items()):
            row = conn.execute(
                f"SELECT count(*), md5(COALESCE(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {stored} t"
            ).fetchone()
            digests[plain] = (int(row[0]), str(row[1])) if row else (0, "")
        return digests


@one_line_errors("bench.rebuild")
def main(argv: list[str] | None = None) -> int:
    """Measure and print each tree's rebuild rates beside the ceiling."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="admin URL of the PostgreSQL server")
    parser.add_argument("--template", required=True, help="the loaded dataset's database")
    parser.add_argument("--before", help="a commit whose rebuild is measured alternately with this tree's")
    parser.add_argument("--runs", type=int, default=2, help="rebuilds per tree (default 2)")
    parser.add_argument("--batch-size", type=int, help="rebuild_projections --batch-size for both trees")
    args = parser.parse_args(argv)
    if not os.environ.get("LEDGER_MASTER_KEY"):
        parser.error("set LEDGER_MASTER_KEY to the key the template was loaded with")
    with tempfile.TemporaryDirectory(prefix="ledger-rebuild-") as tmp:
        trees = [(f"before ({args.before})", checkout(args.before, Path(tmp)))] if args.before else []
        trees.append(("this tree", ROOT))
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in trees}
        ceilings: list[float] = []
        digests: dict[str, dict[str, tuple[int, str]]] = {}
        total = 0
        for run in range(args.runs):
            for k, (name, root) in enumerate(trees):
                copy = f"rebuild_{os.getpid()}_{k}"
                db = copy_database(args.postgres, args.template, copy, Path(tmp))
                try:
                    app = open_store(db)
                    try:
                        ceiling, total = raw_select_decode_rate(app)
                    finally:
                        app.close()
                        app.vault.store.close()
                    ceilings.append(ceiling)
                    events, seconds, wall = rebuild(root, db, args.batch_size)
                    rates[name].append((events / seconds, events / wall))
                    print(
                        f"run {run + 1} {name}: {events} events in {seconds:.1f}s ({events / seconds:,.0f}/s, "
                        f"{events / wall:,.0f}/s with start-up); ceiling {ceiling:,.0f}/s",
                        flush=True,
                    )
                    if run == 0:
                        digests[name] = view_digests(db)
                finally:
                    drop_database(args.postgres, copy)
    best_ceiling = max(ceilings)
    print(f"\n{total} events; raw select + decode, best of {len(ceilings)}: {best_ceiling:,.0f} events/s")
    for name, found in rates.items():
        best, best_wall = max(r for r, _ in found), max(w for _, w in found)
        print(
            f"{name:>24}: rebuild {best:9,.0f} events/s (ratio {best / best_ceiling:.2f}), with start-up "
            f"{best_wall:9,.0f} (ratio {best_wall / best_ceiling:.2f}); runs: "
            + ", ".join(f"{r:,.0f}" for r, _ in found)
        )
    if len(digests) == 2:
        (first, a), (second, b) = digests.items()
        differing = sorted(t for t in a.keys() | b.keys() if a.get(t) != b.get(t))
        print(f"views of {first} and {second}: " + (f"DIFFER in {differing}" if differing else "identical"))
        if differing:
            return 1
    print("reproduce: python -m bench.rebuild " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
