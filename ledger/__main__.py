"""Command line: ``python -m ledger serve [--listen HOST:PORT] [--db URL] [--policy FILE]``, the
operator's commands beside it (``migrate``, ``token``, ``project``, ``audit-views``, ``head``, ``keys``),
and the commands for people that ask a running server (``history``, ``check``, ``simswap``, ``status``,
``verify``, ``trace``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from ledger.cli import RunFailed, one_line_errors
from ledger.config import DEFAULT_DB, DEFAULT_LISTEN, Settings, StoreConfig
from ledger.logs import FORMATS, configure, log_format, quiet_grpc_for_json


def build_parser() -> argparse.ArgumentParser:
    """The ``ledger`` argument parser."""
    from ledger.console.commands import add_people_commands
    from ledger.server.auth import ROLES

    parser = argparse.ArgumentParser(prog="ledger", description="Subscriber lifecycle ledger.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gRPC server in the foreground")
    serve.add_argument("--listen", help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN})")
    serve.add_argument(
        "--http", help="HOST:PORT to serve the HTTP API on (CAMARA, Connect JSON, /openapi.json); off unless given"
    )
    serve.add_argument("--db", help=f"store URL (default {DEFAULT_DB})")
    serve.add_argument("--policy", type=Path, help="policy file (TOML) overriding the defaults")
    serve.add_argument(
        "--master-key-file",
        type=Path,
        help="file holding the base64 master key (default: LEDGER_MASTER_KEY, else generated beside the store)",
    )
    serve.add_argument("--auth", type=Path, help="tokens and roles (TOML); without it, loopback callers only")
    serve.add_argument("--tls-cert", type=Path, help="TLS certificate chain (PEM)")
    serve.add_argument("--tls-key", type=Path, help="TLS private key (PEM)")
    serve.add_argument("--tls-client-ca", type=Path, help="CA (PEM) for client certificates: mutual TLS")
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing the port (default 1)")
    serve.add_argument("--read-db", help="answer recycling checks from this store's read models (a replica)")
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument(
        "--no-projections", action="store_true", help="do not run the read models here (run `ledger project`)"
    )
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    serve.add_argument(
        "--log-format",
        choices=FORMATS,
        help="text (default) or json: one object per line on stderr (also LEDGER_LOG_FORMAT)",
    )
    serve.add_argument(
        "--access-log",
        choices=("on", "off"),
        default=os.environ.get("LEDGER_ACCESS_LOG", "on"),
        help="one INFO line per call on the ledger.access logger (default on; also LEDGER_ACCESS_LOG)",
    )
    serve.add_argument("--metrics", help="HOST:PORT to serve Prometheus metrics on (GET /metrics); off unless given")
    serve.add_argument("--metrics-shared", action="store_true", help=argparse.SUPPRESS)  # a worker's (ledger.workers)
    migrate = sub.add_parser("migrate", help="create the store's tables (events, keys, read models) and exit")
    migrate.add_argument("--db", help=f"store URL (default {DEFAULT_DB})")
    migrate.add_argument("--master-key-file", type=Path, help="as for serve")
    token = sub.add_parser("token", help="make a new bearer token and print its line for the --auth file")
    token.add_argument("--actor", required=True, help="the actor recorded for calls with this token")
    token.add_argument("--role", action="append", required=True, choices=ROLES, help="a role (repeatable)")
    project = sub.add_parser("project", help="run the read-model projections in the foreground")
    project.add_argument("--db", help=f"store URL (default {DEFAULT_DB})")
    project.add_argument("--master-key-file", type=Path, help="as for serve")
    project.add_argument(
        "--rebuild",
        action="store_true",
        help="rebuild the read models from position 0 beside the serving ones, then switch to them",
    )
    project.add_argument(
        "--prepare",
        action="store_true",
        help="build this release's read models (where their schema changed) while older servers serve, then exit",
    )
    project.add_argument(
        "--prune", action="store_true", help="drop read-model generations this release does not serve, then exit"
    )
    project.add_argument("--once", action="store_true", help="catch up with the ledger and exit")
    project.add_argument(
        "--views", help="only these read models (comma-separated): numbers, sim_swaps, compliance, erasure"
    )
    project.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    audit = sub.add_parser("audit-views", help="compare the read models with a replay of the log (and repair)")
    audit.add_argument("--db", help=f"store URL (default {DEFAULT_DB})")
    audit.add_argument("--master-key-file", type=Path, help="as for serve")
    audit.add_argument("--number", help="audit one number (E.164)")
    audit.add_argument("--sample", type=int, default=0, help="audit this many numbers chosen at random")
    audit.add_argument("--repair", action="store_true", help="rewrite the rows that differ from the replay")
    audit.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    head = sub.add_parser("head", help="sign a tree head of the ledger now and print it (JSON), or the public key")
    head.add_argument("--db", help=f"store URL (default {DEFAULT_DB})")
    head.add_argument("--master-key-file", type=Path, help="as for serve (the signing key lives beside it)")
    head.add_argument(
        "--public-key", action="store_true", help="print the head-signing public key (PEM) to publish, and exit"
    )
    keys = sub.add_parser("keys", help="the keys of personal data: end the erasure epoch now, or show the state")
    keys.add_argument("action", choices=("rotate", "status"), help="rotate: end the erasure epoch now")
    keys.add_argument("--db", help=f"store URL (default {DEFAULT_DB})")
    keys.add_argument("--master-key-file", type=Path, help="as for serve")
    add_people_commands(sub)
    return parser


def sign_head(settings: Settings, public_key: bool) -> int:
    """``ledger head``: print the public key, or sign a head now (the latest when nothing was added)."""
    import orjson

    from ledger.bootstrap import load_head_signer, open_ledger
    from ledger.proofs.heads import public_pem
    from ledger.proofs.publish import publish

    signer = load_head_signer(settings)
    if public_key:
        print(public_pem(signer.public), end="")
        return 0
    app = open_ledger(settings)
    try:
        if app.proofs is None:
            raise RunFailed("this store keeps no signed heads")
        head = publish(app.proofs, app.reader, signer, app.batch_key)
    finally:
        app.close()
        app.vault.store.close()
    print(orjson.dumps(head.to_json()).decode())
    return 0


def keys_command(settings: Settings, action: str) -> int:
    """``ledger keys rotate`` (end the erasure epoch now) and ``ledger keys status``; prints JSON."""
    import orjson

    from ledger.bootstrap import open_ledger
    from ledger.keys.rotation import end_epoch

    app = open_ledger(settings)
    try:
        vault = app.vault
        if action == "rotate":
            rotation = end_epoch(vault)
            report: dict[str, object] = dict(rotation.__dict__) if rotation is not None else {}
        else:
            state = vault.store.state()
            report = {
                "epoch": vault.epoch,
                "buckets": vault.buckets,
                "epoch_started_at": (state.started_us / 1_000_000) if state else None,
                "marked_buckets": len(vault.store.marked()),
                "held_erasures": len(vault.store.held_erasures()),
                "epoch_key_file": str(vault.epoch_file.path),
            }
    finally:
        app.close()
        app.vault.store.close()
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


@one_line_errors("ledger")
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ledger`` and the ``ledger`` command."""
    # gRPC reads its logging settings once, when imported: in JSON mode they are set before (see ledger.logs).
    quiet_grpc_for_json(argv if argv is not None else sys.argv[1:])
    from ledger.console.commands import COMMANDS

    args = build_parser().parse_args(argv)
    if args.command in COMMANDS:  # a client: it prints what it answers and installs no log handler
        from ledger.console.commands import run

        return run(args)
    configure(str(getattr(args, "log_level", "INFO")), log_format(getattr(args, "log_format", None)))
    if args.command == "serve" and args.workers > 1:
        from ledger.workers import run_workers

        return run_workers(args.workers, argv if argv is not None else sys.argv[1:])
    if args.command == "serve":
        from ledger.server.serve import serve

        settings = Settings.build(
            listen=args.listen,
            db=args.db,
            policy_file=args.policy,
            master_key_file=args.master_key_file,
            auth_file=args.auth,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
        )
        settings = dataclasses.replace(
            settings,
            run_projections=not args.no_projections,
            reuse_port=args.reuse_port,
            http_listen=args.http,
            metrics_listen=args.metrics,
            metrics_shared=args.metrics_shared,
            metrics_interval_seconds=float(os.environ.get("LEDGER_METRICS_INTERVAL_SECONDS", "5")),
            access_log=args.access_log == "on",
            read_store=StoreConfig.from_url(args.read_db) if args.read_db else None,
        )
        return serve(settings)
    if args.command == "token":
        from ledger.server.auth import new_token

        token, digest = new_token()
        roles = ", ".join(f'"{r}"' for r in args.role)
        print(f"# give this token to {args.actor}; it is shown once and not stored:\n# {token}")
        print(f'[[tokens]]\nactor = "{args.actor}"\nsha256 = "{digest}"\nroles = [{roles}]')
        return 0
    if args.command == "migrate":
        from ledger.bootstrap import migrate

        print(migrate(Settings.build(db=args.db, master_key_file=args.master_key_file)))
        return 0
    if args.command == "project":
        from ledger.projection_worker import run_projections

        settings = _existing(Settings.build(db=args.db, master_key_file=args.master_key_file))
        views = args.views.split(",") if args.views else None
        if args.prune:
            from ledger.projection_worker import prune

            return prune(settings)
        return run_projections(
            settings, rebuild=args.rebuild, once=args.once or args.prepare, views=views, prepare=args.prepare
        )
    if args.command == "head":
        return sign_head(_existing(Settings.build(db=args.db, master_key_file=args.master_key_file)), args.public_key)
    if args.command == "audit-views":
        from ledger.projection_worker import audit_views

        settings = _existing(Settings.build(db=args.db, master_key_file=args.master_key_file))
        return audit_views(settings, number=args.number, sample=args.sample, repair=args.repair)
    if args.command == "keys":
        return keys_command(_existing(Settings.build(db=args.db, master_key_file=args.master_key_file)), args.action)
    return 2


def _existing(settings: Settings) -> Settings:
    """Settings whose SQLite ledger exists: projections and audits follow a ledger, and a mistyped path
    must not start a new, empty one."""
    path = settings.store.sqlite_path
    if path is not None and not path.is_file():
        raise RunFailed(f"no ledger at {path} (check --db or LEDGER_DB; the server creates it on first start)")
    return settings


if __name__ == "__main__":
    sys.exit(main())
