"""The cost of ending an erasure epoch: keys stored, erasures made, and what the epoch's end re-wraps.

python -m bench.bench_keys --keys 100000 --erasures 100 [--buckets 4096]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from uuid import uuid4

from ledger.keys import EpochFile, MasterKey, PersonalDataVault, SQLiteKeyStore
from ledger.keys.rotation import end_epoch


def main(argv: list[str] | None = None) -> int:
    """Print the time to store the keys, to erase, and to end the epoch (with erasures, and without)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--erasures", type=int, default=100)
    parser.add_argument("--buckets", type=int, default=4096)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = SQLiteKeyStore(str(folder / "keys.db"))
        master = MasterKey.load_or_create(folder / "master.key")
        vault = PersonalDataVault(master, store, EpochFile(folder / "epoch.key"), buckets=args.buckets)
        ids = [uuid4() for _ in range(args.keys)]
        started = time.perf_counter()
        for i in range(0, len(ids), 1000):
            vault.store_keys([vault.new_key(s) for s in ids[i : i + 1000]])
        print(f"stored {args.keys} data keys in {time.perf_counter() - started:.2f} s")
        started = time.perf_counter()
        for sid in ids[: args.erasures]:
            vault.destroy(sid)
        print(f"{args.erasures} erasures in {time.perf_counter() - started:.2f} s")
        for label in ("epoch end after the erasures", "epoch end without erasures"):
            rotation = end_epoch(vault)
            if rotation is not None:
                print(
                    f"{label}: {rotation.marked_buckets} bucket(s) re-keyed, {rotation.rewrapped_data_keys} data "
                    f"key(s) re-wrapped, {rotation.buckets} bucket keys re-wrapped, {rotation.seconds:.3f} s"
                )
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
