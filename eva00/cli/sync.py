"""`eva00 sync ENTITY [--project ID] [--id ID] [--wait]`: an on-demand refresh.

The job goes on the priority stream, charged to the on-demand budget, and runs through the same
fetcher and differ as everything else. ``--wait`` watches PostgreSQL (the only truth) for the
poll's completion rather than trusting anything in Redis.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import psycopg
import redis

from eva00 import keys
from eva00.config import Settings
from eva00.kinds import COMPANY_LEVEL_KINDS, FAMILY_KINDS, KIND_TABLE
from eva00.messages import BudgetClass, PollJob, PollMode
from eva00.replica import polls
from eva00.runtime.bus import Bus


def kinds_for(entity: str) -> tuple[str, ...]:
    """An entity family (rfis, drawings, ...) or a single kind (rfi, drawing_revision, ...)."""
    if entity in FAMILY_KINDS:
        return FAMILY_KINDS[entity]
    if entity in KIND_TABLE:
        return (entity,)
    known = ", ".join(sorted(FAMILY_KINDS))
    raise ValueError(f"unknown entity {entity!r}: use a family ({known}) or a kind such as rfi")


def build_jobs(kinds: Sequence[str], project_ids: Sequence[int], item_id: int | None,
               now: float) -> list[PollJob]:
    if item_id is not None and (len(kinds) != 1 or len(project_ids) > 1):
        raise ValueError("--id needs a single kind and at most one --project")
    jobs = []
    for kind in kinds:
        if kind in COMPANY_LEVEL_KINDS:
            targets: list[int | None] = [None]
        elif project_ids:
            targets = list(project_ids)
        else:
            raise ValueError(f"{kind} belongs to a project: give --project ID")
        for project_id in targets:
            jobs.append(PollJob(kind=kind, project_id=project_id,
                                mode=PollMode.ITEM if item_id is not None else PollMode.INCREMENTAL,
                                budget=BudgetClass.ON_DEMAND, reason="cli", item_id=item_id,
                                requested_at=now))
    return jobs


def enqueue(client: redis.Redis, jobs: Sequence[PollJob]) -> list[str]:
    bus = Bus(client, "eva00-sync")
    return [bus.publish(keys.STREAM_SYNC_PRIORITY, job) for job in jobs]


def wait_for(database_url: str, jobs: Sequence[PollJob], since_epoch: float, timeout_s: float,
             sleep: Callable[[float], None] = time.sleep) -> bool:
    """True once a poll of every (kind, project) requested finished after ``since_epoch``."""
    deadline = time.monotonic() + timeout_s
    wanted = {(job.kind, job.project_id or 0) for job in jobs}
    while True:
        with psycopg.connect(database_url, autocommit=True) as conn:
            finished = polls.polls_finished_since(conn, since_epoch, [k for k, _p in wanted])
        if wanted <= finished:
            return True
        if time.monotonic() > deadline:
            return False
        sleep(0.5)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="eva00 sync", description=__doc__.splitlines()[0])
    parser.add_argument("entity", help="a family (rfis, submittals, drawings, ...) or a kind (rfi)")
    parser.add_argument("--project", type=int, action="append", default=[], help="project id")
    parser.add_argument("--id", type=int, dest="item_id", help="one record's Procore id")
    parser.add_argument("--wait", action="store_true", help="wait until the refresh is committed")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args(argv)
    from eva00.config import load_or_exit
    from eva00.runtime.process import redis_client

    settings: Settings = load_or_exit()
    now = time.time()
    try:
        jobs = build_jobs(kinds_for(args.entity), args.project, args.item_id, now)
    except ValueError as exc:
        print(f"eva00 sync: {exc}", file=sys.stderr)
        return 2
    try:
        enqueue(redis_client(settings), jobs)
    except redis.ConnectionError as exc:
        print(f"eva00 sync: Redis is not reachable ({exc}); is the stack up (make up)?", file=sys.stderr)
        return 3
    print(f"{len(jobs)} refresh job(s) queued on {keys.STREAM_SYNC_PRIORITY} (on-demand budget)")
    if not args.wait:
        return 0
    # Server and host clocks may differ a little: accept polls finished just before we asked.
    if wait_for(settings.effective_database_url, jobs, now - 5, args.timeout_s):
        print("refreshed")
        return 0
    print(f"eva00 sync: not refreshed within {args.timeout_s:.0f} s (are the fetcher and differ"
          " running? see make status)", file=sys.stderr)
    return 1
