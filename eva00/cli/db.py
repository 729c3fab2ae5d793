"""`eva00 db init`: create the database when it is the embedded one, apply schema.sql as the
schema's owner and grant the app role (DATABASE_URL's) what the stages need.

For an external server: EVA00_DATABASE_OWNER_URL names the owner; `--create-app-role` also makes
DATABASE_URL's role (LOGIN only, its password taken from DATABASE_URL or a password file)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eva00.config import load_or_exit


def cmd_db_init(args: argparse.Namespace) -> int:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from eva00.runtime import db, roles

    settings = load_or_exit()
    if args.create_app_role:
        if settings.embedded_postgres:
            print("eva00: the embedded stack makes its app role itself", file=sys.stderr)
            return 2
        password = (args.password_file.read_text().strip() if args.password_file
                    else str(conninfo_to_dict(settings.effective_database_url).get("password") or ""))
        if not password:
            print("eva00: --create-app-role needs DATABASE_URL's password (in the URL or"
                  " --password-file)", file=sys.stderr)
            return 2
        with psycopg.connect(settings.effective_owner_url, autocommit=True) as conn:
            roles.create_app_role(conn, db.role_of(settings.effective_database_url), password)
    db.wait_until_ready(settings, timeout_s=args.wait_s)
    where = settings.effective_database_url.rsplit("@", 1)[-1].split("?", 1)[0]
    app, owner = db.role_of(settings.effective_database_url), db.role_of(settings.effective_owner_url)
    print(f"schema applied to {where} by {owner}"
          + (f"; {app} granted {roles.GRANTS_SUMMARY}" if app != owner else ""))
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dbp = sub.add_parser("db", help="database commands")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    init = dbsub.add_parser("init", help="create the database if embedded, apply schema.sql as the"
                                         " owner and grant the app role")
    init.add_argument("--wait-s", type=float, default=120.0)
    init.add_argument("--create-app-role", action="store_true",
                      help="create (or reset the password of) DATABASE_URL's role, as the owner")
    init.add_argument("--password-file", type=Path, default=None,
                      help="the app role's password, when DATABASE_URL carries none")
    init.set_defaults(func=cmd_db_init)
