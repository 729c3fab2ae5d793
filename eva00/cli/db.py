"""`eva00 db init`: create the database when it is the embedded one, and apply schema.sql."""

from __future__ import annotations

import argparse

from eva00.config import load_or_exit


def cmd_db_init(args: argparse.Namespace) -> int:
    from eva00.runtime import db

    settings = load_or_exit()
    db.wait_until_ready(settings, timeout_s=args.wait_s)
    print(f"schema applied to {settings.effective_database_url.rsplit('@', 1)[-1]}")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dbp = sub.add_parser("db", help="database commands")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    init = dbsub.add_parser("init", help="create the database if embedded and apply schema.sql")
    init.add_argument("--wait-s", type=float, default=120.0)
    init.set_defaults(func=cmd_db_init)
