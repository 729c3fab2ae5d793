"""`eva00`: the operator's command line. Each subcommand imports its module only when used, so a
broken optional part never stops `eva00 up` or `eva00 db init` from working."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from eva00.config import EXIT_CONFIG, ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"eva00: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_up(args: argparse.Namespace) -> int:
    from eva00.ops import supervision

    settings = _settings()
    infos = supervision.up(settings, wait_s=args.wait_s)
    print(supervision.format_status(infos))
    bad = [i for i in infos if i["statename"] not in ("RUNNING", "STOPPED", "EXITED")]
    return 1 if bad else 0


def cmd_down(args: argparse.Namespace) -> int:
    from eva00.ops import supervision

    supervision.down(_settings())
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    from eva00.ops import supervision

    settings = _settings()
    if not supervision.is_running(settings):
        print("supervisord is not running (start it with `make up`)")
        return 3
    print(supervision.format_status(supervision.rpc(settings).supervisor.getAllProcessInfo()))
    return 0


def cmd_backlog(args: argparse.Namespace) -> int:
    import redis

    from eva00.ops.streams_report import backlog_rows

    client = redis.Redis.from_url(_settings().effective_redis_url, socket_timeout=5)
    try:
        rows = backlog_rows(client)
    except redis.ConnectionError as exc:
        print(f"eva00: Redis is not reachable: {exc}", file=sys.stderr)
        return 3
    print(f"{'stream':<24} {'group':<18} {'length':>8} {'pending':>8} {'lag':>8}")
    for row in rows:
        print(f"{row.stream:<24} {row.group:<18} {row.length:>8} {row.pending:>8} {row.lag:>8}")
    return 0


def cmd_db_init(args: argparse.Namespace) -> int:
    from eva00.runtime import db

    settings = _settings()
    db.wait_until_ready(settings, timeout_s=args.wait_s)
    print(f"schema applied to {settings.effective_database_url.rsplit('@', 1)[-1]}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from eva00.config import settings_table

    print("| Variable | Default | Meaning |\n|---|---|---|")
    for name, default, doc in settings_table():
        print(f"| `{name}` | {f'`{default}`' if default else '(unset)'} | {doc} |")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eva00", description="EVA-00 Sync: a Procore replica.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start supervisord and every program")
    up.add_argument("--wait-s", type=float, default=90.0)
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop every program and supervisord").set_defaults(func=cmd_down)
    sub.add_parser("ps", help="state of every supervisord program").set_defaults(func=cmd_ps)
    sub.add_parser("backlog", help="stream lengths and pending entries per group").set_defaults(
        func=cmd_backlog)
    dbp = sub.add_parser("db", help="database commands")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    init = dbsub.add_parser("init", help="create the database if embedded and apply schema.sql")
    init.add_argument("--wait-s", type=float, default=120.0)
    init.set_defaults(func=cmd_db_init)
    sub.add_parser("config", help="print every configuration variable (Markdown)").set_defaults(
        func=cmd_config)
    for name, text in DELEGATED_HELP.items():
        sub.add_parser(name, help=f"{text} (eva00 {name} --help)")
    return parser


# Subcommands with parsers of their own: argparse.REMAINDER would not pass on their --options.
DELEGATED = {
    "sim": "eva00.simulator.cli",
    "auth": "eva00.cli.auth",
    "sync": "eva00.cli.sync",
    "full-sync": "eva00.cli.full_sync",
    "webhooks": "eva00.cli.webhooks",
    "import": "eva00.cli.pdf_import",
    "search": "eva00.ops.search",
    "status": "eva00.ops.status",
    "archive": "eva00.ops.archive",
    "check": "eva00.cli.check",
}
DELEGATED_HELP = {
    "sim": "run the Procore simulator",
    "auth": "OAuth login (authorization code) and token status",
    "sync": "on-demand refresh of an entity type, a project or one record",
    "full-sync": "the initial full sync in four phases, resumable",
    "webhooks": "register, inspect or remove our Procore webhook",
    "import": "import Procore PDF logs and submittal cover sheets",
    "search": "full-text search over records and file text",
    "check": "compare the replica with the simulator's ground truth (every figure 0 = pass)",
    "status": "sync status in the terminal (--json for scripts)",
    "archive": "archive old sync_log rows to compressed monthly files",
}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] in DELEGATED:
        import importlib

        delegated: Callable[[list[str]], int] = importlib.import_module(DELEGATED[arguments[0]]).main
        return delegated(arguments[1:])
    args = build_parser().parse_args(arguments)
    result: int = args.func(args)
    return result
