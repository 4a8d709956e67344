"""Write a recycling-check input file for the synthetic number range of ``generate_dataset``.

python -m bench.sample_queries --numbers 100000 --since 2025-06-01 -o queries.csv
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import date, timedelta
from pathlib import Path

from ledger.cli import one_line_errors, output_file
from scripts.dataset import identifiers as synthetic


@one_line_errors("sample_queries")
def main(argv: list[str] | None = None) -> int:
    """Write ``number,since_date`` rows (CSV with header), one per number, dates spread over a year."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=100_000, help="rows to write (default 100000)")
    parser.add_argument("--since", default="2025-06-01", help="latest since_date; earlier ones spread a year back")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the dates (default 1)")
    parser.add_argument("-o", "--output", type=Path, default=Path("queries.csv"), help="file to write")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    latest = date.fromisoformat(args.since)
    with output_file(args.output) as out:
        out.write("number,since_date\n")
        for i in range(args.numbers):
            out.write(f"{synthetic.msisdn(i)},{latest - timedelta(days=rng.randrange(365))}\n")
    print(f"wrote {args.numbers} queries to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
