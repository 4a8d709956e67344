"""Command line: ``python -m ledger serve [--listen HOST:PORT] [--db URL] [--policy FILE]``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ledger.config import DEFAULT_DB, DEFAULT_LISTEN, ConfigError, Settings


def build_parser() -> argparse.ArgumentParser:
    """The ``ledger`` argument parser."""
    parser = argparse.ArgumentParser(prog="ledger", description="Subscriber lifecycle ledger.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gRPC server in the foreground")
    serve.add_argument("--listen", help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN})")
    serve.add_argument("--db", help=f"store URL (default {DEFAULT_DB})")
    serve.add_argument("--policy", type=Path, help="policy file (TOML) overriding the defaults")
    serve.add_argument(
        "--master-key-file",
        type=Path,
        help="file holding the base64 master key (default: LEDGER_MASTER_KEY, else generated beside the store)",
    )
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ledger`` and the ``ledger`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "serve":
        from ledger.server.app import serve

        try:
            settings = Settings.build(
                listen=args.listen, db=args.db, policy_file=args.policy, master_key_file=args.master_key_file
            )
            return serve(settings)
        except ConfigError as e:
            print(f"ledger: {e}", file=sys.stderr)
            return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
