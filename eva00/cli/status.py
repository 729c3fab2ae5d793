"""`eva00 status [--family F] [--project P] [--all] [--json]`: the status snapshot
(eva00/ops/status.py) in the terminal, one row per family first, or as JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eva00.config import Settings


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """`eva00 status`: one row per entity family (ok / late / critical pairs, the worst one), open
    alerts, then the rest. Exit 0 when fresh and healthy, 1 when something needs attention."""
    from rich.console import Console

    from eva00.kinds import FAMILY_KINDS
    from eva00.ops.glance import select_pairs
    from eva00.ops.status import StatusReader, render, supervisor_lister
    from eva00.runtime import db
    from eva00.runtime.process import redis_client

    parser = argparse.ArgumentParser(prog="eva00 status", description=main.__doc__)
    parser.add_argument("--json", action="store_true",
                        help="machine-readable output: every pair, the summary and the heat map")
    parser.add_argument("--family", choices=sorted(FAMILY_KINDS), help="also list this family's pairs")
    parser.add_argument("--project", type=int, metavar="ID",
                        help="also list this project's pairs (0: the company-level kinds)")
    parser.add_argument("--all", action="store_true", help="also list every (kind, project) pair")
    args = parser.parse_args(argv)
    if settings is None:
        from eva00.config import load_or_exit

        settings = load_or_exit()
    client = redis_client(settings)
    pool = db.make_pool(settings, max_size=1, name="eva00-status")
    try:
        snap = StatusReader(settings, client, pool, processes=supervisor_lister(settings)).snapshot()
    finally:
        pool.close()
        client.close()
    if args.json:
        sys.stdout.buffer.write(snap.to_json() + b"\n")
    else:
        wanted = args.all or args.family is not None or args.project is not None
        details = select_pairs(snap.freshness, args.family, args.project) if wanted else None
        # Piped to a file or a pager, rich would assume 80 columns and wrap every table.
        render(snap, Console() if sys.stdout.isatty() else Console(width=160), details)
    unhealthy = any(f.level == "stale" for f in snap.freshness) or any(
        a["severity"] == "critical" for a in snap.alerts) or {"postgres", "redis"} & set(snap.errors)
    return 1 if unhealthy else 0
