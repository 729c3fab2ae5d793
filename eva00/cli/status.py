"""`eva00 status [--json]`: the status snapshot (eva00/ops/status.py) in the terminal or as JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eva00.config import Settings


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """`eva00 status [--json]`: exit 0 when fresh and healthy, 1 when something needs attention."""
    from rich.console import Console

    from eva00.ops.status import StatusReader, render, supervisor_lister
    from eva00.runtime import db
    from eva00.runtime.process import redis_client

    parser = argparse.ArgumentParser(prog="eva00 status", description=main.__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
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
        render(snap, Console())
    unhealthy = any(f.level == "stale" for f in snap.freshness) or any(
        a["severity"] == "critical" for a in snap.alerts) or {"postgres", "redis"} & set(snap.errors)
    return 1 if unhealthy else 0
