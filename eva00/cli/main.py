"""`eva00`: the operator's command line, the top-level parser and its dispatch. The stack commands
(eva00/cli/stack.py) and `db` (eva00/cli/db.py) share this parser; every other command group has
a parser of its own in its module. Each subcommand imports what it drives only when used, so a
broken optional part never stops `eva00 up` or `eva00 db init` from working."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from eva00.cli import db, stack


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eva00", description="EVA-00 Sync: a Procore replica.")
    sub = parser.add_subparsers(dest="command", required=True)

    stack.add_parsers(sub)
    db.add_parsers(sub)
    sub.add_parser("config", help="print every configuration variable (Markdown)").set_defaults(
        func=stack.cmd_config)
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
    "search": "eva00.cli.search",
    "status": "eva00.cli.status",
    "archive": "eva00.cli.archive",
    "check": "eva00.cli.check",
    "doctor": "eva00.cli.doctor",
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
    "doctor": "first-run checks: settings, PostgreSQL, Redis, Procore token/company/tools, clock,"
              " webhook, disk (PASS/WARN/FAIL with the fix)",
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
