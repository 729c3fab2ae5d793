"""Cost that grows linearly (issue 18): the full sync and an hour of everyday polling at several
multiples of the standard data set (20 projects, 5,000 records; files tiny).

Per size: a fresh database, a simulator with ``5,000 x N`` records (limits off: this measures
cost, not speed), the fetcher and the differ of eva00/proof/pipeline_local.py each in its own
thread (their CPU time is that thread's), and

- the full sync (FullSync, phases 1-4, driven as the scheduler does; files are not downloaded);
- an hour of everyday polling on a virtual clock: every family polled at its seed interval (60
  one-minute steps, each drained before the next), with 2% of the records changed during the hour
  spread over the steps.

Figures per size, each against the 1x figure (goal: within 1.25x): fetcher + differ CPU-seconds per
1,000 records (full sync; polling), database bytes per record (the growth of every table and index
from the empty schema, divided by the records stored); and requests / floor <= 1.02 (full sync: the
run's own floor, listings and shows; polling: one request per page the differ committed plus one
show per distinct record shown).

Sizes: EVA00_BENCH_COST_SIZES, default "1,4" to fit `make bench` in about 30 minutes on 2 cores;
"1,4,16" is the full set (5k, 20k, 80k records; about 15 minutes more).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.fullsync.run import FullSync
from eva00.fullsync.status import run_status
from eva00.proof.bench.services import Services, local_services
from eva00.proof.pipeline_local import LocalPipeline, settings_for_simulator
from eva00.simulator.testing import SimHandle, SimulatorFailed, running_simulator

SIZES = tuple(int(x) for x in os.environ.get("EVA00_BENCH_COST_SIZES", "1,4").split(",") if x.strip())
PROJECTS = 20
ITEMS = 5000
CHANGED_PER_HOUR = 0.02
CHANGED_KINDS = ("rfi", "submittal", "change_event", "meeting", "image", "document", "drawing", "task")
GROWTH_GOAL = 1.25
FLOOR_GOAL = 1.02
TIMEOUT_S = 3600.0


@dataclass
class SizeResult:
    size: int
    records: int
    sync_cpu_s: float
    poll_cpu_s: float
    db_bytes: int
    sync_requests: int
    sync_floor: int
    poll_requests: int
    poll_floor: int

    def per_1000(self, cpu_s: float) -> float:
        return cpu_s / (self.records / 1000.0)


class Threads:
    """The fetcher and the differ stepping in their own threads, CPU time counted per thread."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.stop = threading.Event()
        self.cpu_s = {"fetcher": 0.0, "differ": 0.0}
        self.idle = {"fetcher": False, "differ": False}
        self._lock = threading.Lock()
        steps = (("fetcher", pipeline.fetcher.step), ("differ", pipeline.differ.step))
        self.threads = [threading.Thread(target=self._loop, args=(name, step), daemon=True)
                        for name, step in steps]
        for thread in self.threads:
            thread.start()

    def _loop(self, name: str, step: Callable[[], int]) -> None:
        while not self.stop.is_set():
            before = time.thread_time()
            handled = step()
            with self._lock:
                self.cpu_s[name] += time.thread_time() - before
                self.idle[name] = handled == 0
            if not handled:
                time.sleep(0.005)

    def total_cpu_s(self) -> float:
        with self._lock:
            return sum(self.cpu_s.values())

    def quiet(self, client: redis.Redis, rounds: int = 3) -> None:
        """Until both stages found nothing to do a few looks in a row."""
        seen = 0
        deadline = time.monotonic() + TIMEOUT_S
        while seen < rounds:
            if time.monotonic() > deadline:
                raise TimeoutError("the pipeline never went quiet")
            time.sleep(0.05)
            with self._lock:
                both = all(self.idle.values())
            seen = seen + 1 if both else 0

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def api_calls(sim: SimHandle, since: float) -> tuple[int, int]:
    """(API requests since, distinct records shown: the shows the changes needed)."""
    calls = [e["path"] for e in sim.ledger() if e["host"] == "api" and "/oauth/" not in e["path"]
             and not e["path"].startswith("/_sim") and e["t"] >= since]
    bare = [path.split("?", 1)[0].rstrip("/") for path in calls]
    shows = {path for path in bare if path.rsplit("/", 1)[-1].isdigit()}
    return len(calls), len(shows)


def stored_bytes(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n"
                       " ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm')"
                       " AND n.nspname NOT IN ('pg_catalog', 'information_schema')").fetchone()
    return int(row[0] or 0) if row else 0


def one_size(tmp_dir: Path, services: Services, size: int) -> SizeResult:
    name = f"cost_x{size}"
    database_url, redis_url = services.new_database(name), services.redis_url
    redis.Redis.from_url(services.redis_admin_url).flushall()
    client = redis.Redis.from_url(redis_url)
    with psycopg.connect(services.postgres.database_url(name, owner=True), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        empty_bytes = stored_bytes(conn)
    base = Settings.from_env({"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                              "EVA00_DATA_DIR": str(tmp_dir / f"data-{size}"),
                              "EVA00_VAR_DIR": str(tmp_dir / f"var-{size}")}, dotenv=None)
    with running_simulator(tmp_dir / f"sim-{size}", projects=PROJECTS, items=ITEMS * size, file_size_bytes=64,
                           rate_limit="off") as sim, \
            ConnectionPool(database_url, min_size=2, max_size=6) as pool:
        settings = settings_for_simulator(base, api_base=sim.api_base, login_base=sim.login_base,
                                          client_id=sim.client_id, client_secret=sim.client_secret,
                                          company_id=sim.company_id)
        pipeline = LocalPipeline.build(settings, client, pool)
        threads = Threads(pipeline)
        try:
            sync = FullSync(settings, client, pool)
            run = sync.start(None, [1, 2, 3, 4])
            while run.status == "running":
                time.sleep(0.2)
                run = sync.step(run)
            status = run_status(sync, run)
            threads.quiet(client)
            sync_cpu_s = threads.total_cpu_s()
            sync_requests = int(status["requests"])
            with psycopg.connect(services.postgres.database_url(name, owner=True), autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
                records_row = conn.execute("SELECT count(*) FROM replica_records").fetchone()
                db_bytes = stored_bytes(conn) - empty_bytes
            records = int(records_row[0]) if records_row else 0
            poll_started = time.time()
            poll_requests_floor = _polling_hour(sim, pipeline, threads, client, database_url, records)
            poll_cpu_s = threads.total_cpu_s() - sync_cpu_s
            poll_requests, shows = api_calls(sim, poll_started)
            poll_requests_floor += shows
        finally:
            threads.close()
    return SizeResult(size, records, sync_cpu_s, poll_cpu_s, db_bytes, sync_requests, int(status["floor"]),
                      poll_requests, poll_requests_floor)


def _polling_hour(sim: SimHandle, pipeline: LocalPipeline, threads: Threads, client: redis.Redis,
                  database_url: str, records: int) -> int:
    """Sixty one-minute steps of the seed's schedule; returns the pages the differ committed."""
    rng = random.Random(records)
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(committed_at), now()) FROM poll_pages").fetchone()
    assert row is not None
    since = row[0]
    projects = [p["id"] for p in sim.truth(["project"])["records"] if not p["is_deleted"]]
    changes_per_minute = records * CHANGED_PER_HOUR / 60.0
    owed = 0.0
    for minute in range(60):
        owed += changes_per_minute
        while owed >= 1:
            owed -= 1
            with contextlib.suppress(SimulatorFailed):  # nothing of that kind there
                sim.mutate("update", rng.choice(CHANGED_KINDS), project_id=rng.choice(projects))
        for family, interval_s in pipeline.settings.poll_intervals_s.items():
            if (minute * 60) % interval_s == 0:
                pipeline.scheduler.tick_family(family)
        threads.quiet(client)
        # the next poll's window must start after this one's end (whole-second stamps)
        time.sleep(1.1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        pages = conn.execute("SELECT count(*) FROM poll_pages WHERE committed_at > %s", (since,)).fetchone()
    return int(pages[0]) if pages else 0


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    with local_services(tmp_dir) as services:
        results = [one_size(tmp_dir, services, size) for size in SIZES]
    lines = table(results)
    (tmp_dir / "cost_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return figures(results)


def table(results: list[SizeResult]) -> list[str]:
    lines = ["| Size | Records | sync CPU-s / 1k | polling-hour CPU-s / 1k | DB bytes / record |"
             " sync requests / floor | polling requests / floor |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.size}x | {r.records} | {r.per_1000(r.sync_cpu_s):.3f}"
                     f" | {r.per_1000(r.poll_cpu_s):.3f}"
                     f" | {r.db_bytes / max(1, r.records):.0f} | {r.sync_requests}/{r.sync_floor} ="
                     f" {r.sync_requests / max(1, r.sync_floor):.3f} | {r.poll_requests}/{r.poll_floor} ="
                     f" {r.poll_requests / max(1, r.poll_floor):.3f} |")
    return lines


def figures(results: list[SizeResult]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    first = results[0]
    measures: list[tuple[str, str, Callable[[SizeResult], float]]] = [
        ("full sync fetcher+differ CPU-s per 1,000 records", "CPU-s", lambda r: r.per_1000(r.sync_cpu_s)),
        ("polling hour fetcher+differ CPU-s per 1,000 records", "CPU-s", lambda r: r.per_1000(r.poll_cpu_s)),
        ("database bytes per record", "bytes", lambda r: r.db_bytes / max(1, r.records)),
    ]
    for r in results:
        label = f"cost at {r.size}x ({r.records} records)"
        for name, unit, measure in measures:
            value = measure(r)
            if r is not first:
                ratio = value / max(1e-12, measure(first))
                out.append({"name": f"{label}: {name} / the 1x figure ({value:.4g} {unit})", "value": ratio,
                            "unit": "ratio", "goal": f"<= {GROWTH_GOAL}", "met": ratio <= GROWTH_GOAL})
            else:
                out.append({"name": f"{label}: {name}", "value": value, "unit": unit, "goal": ">= 0",
                            "met": True})
        for name, used, floor in (("full sync", r.sync_requests, r.sync_floor),
                                  ("polling hour", r.poll_requests, r.poll_floor)):
            ratio = used / floor if floor else float("inf")
            out.append({"name": f"{label}: {name} requests / floor ({used} / {floor})", "value": ratio,
                        "unit": "ratio", "goal": f"<= {FLOOR_GOAL}", "met": ratio <= FLOOR_GOAL})
    return out


if __name__ == "__main__":
    import tempfile

    for figure in run(Path(tempfile.mkdtemp(prefix="eva00-bench-cost-"))):
        print(f"{figure['name']}: {figure['value']:.4g} {figure['unit']} (goal {figure['goal']})")
