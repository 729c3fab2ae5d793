"""Freshness (issue 9): the time from a change in the simulator to the new version in PostgreSQL.

Two runs on the standard data set, each with the real processes (webhook listener, two fetchers,
differ, scheduler) and the simulator's limits scaled ten times faster than Procore's (100 per 6 s,
spike 25 per 1 s; our limiter 95 per 6 s). With webhooks the changes land while the initial sync
keeps the scheduled budget saturated; without webhooks only the RFI poll (every POLL_S) sees them.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import redis

from eva00 import keys
from eva00.config import ROOT_DIR
from eva00.ops.localstack import free_port, start_postgres, start_redis
from eva00.ops.streams_report import backlog_rows
from eva00.runtime import db
from eva00.simulator.testing import SimHandle, running_simulator

CHANGES = 20
PROJECTS = 20
POLL_S = 20  # the RFI poll interval of the run without webhooks (production: 300 s)
DEADLINE_S = 120.0


def _env(sim: SimHandle, database_url: str, redis_url: str, work: Path, webhook_port: int) -> dict[str, str]:
    intervals = ",".join(f"{family}={POLL_S if family == 'rfis' else 3600}" for family in (
        "projects", "submittals", "rfis", "drawings", "daily_logs", "meetings", "change_orders",
        "photos", "documents", "companies", "contacts", "spec_sections", "schedule_tasks"))
    return {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "PROCORE_CLIENT_ID": sim.client_id, "PROCORE_CLIENT_SECRET": sim.client_secret,
            "PROCORE_COMPANY_ID": str(sim.company_id), "PROCORE_API_BASE": sim.api_base,
            "PROCORE_LOGIN_BASE": sim.login_base, "EVA00_VAR_DIR": str(work / "var"),
            "EVA00_ALLOW_LOOPBACK_URLS": "1",
            "EVA00_DATA_DIR": str(work / "data"), "EVA00_WEBHOOK_PORT": str(webhook_port),
            "EVA00_RATE_WINDOW_S": "6", "EVA00_RATE_WINDOW_MAX": "95", "EVA00_RATE_REFILL_PER_S": "15",
            "EVA00_RATE_BURST": "10", "EVA00_CONNECTION_ERROR_PAUSE_S": "6.5",
            "EVA00_POLL_SAFETY_MARGIN_S": "1", "EVA00_POLL_INTERVALS": intervals,
            "EVA00_STREAM_BLOCK_MS": "500", "PYTHONUNBUFFERED": "1"}


# supervisord programs that run another program's file with extra environment (supervisord.conf).
_VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "fetcher_priority": ("fetcher", {"EVA00_FETCHER_STREAMS": "priority"}),
}


@contextmanager
def _processes(env: dict[str, str], names: list[str], log_dir: Path) -> Iterator[None]:
    log_dir.mkdir(parents=True, exist_ok=True)
    running = []
    for index, name in enumerate(names):
        log = (log_dir / f"{name}-{index}.log").open("ab")
        script, extra_env = _VARIANTS.get(name, (name, {}))
        running.append(subprocess.Popen(
            [sys.executable, str(ROOT_DIR / "processes" / f"{script}.py")],
            env={**env, **extra_env, "SUPERVISOR_PROCESS_NAME": f"{name}-{index}"}, stdout=log, stderr=log))
    try:
        yield
    finally:
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for_rfis(database_url: str, count: int) -> list[tuple[int, int]]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with psycopg.connect(database_url, autocommit=True) as conn:
            rows = conn.execute("SELECT procore_id, project_id FROM rfis WHERE NOT is_deleted"
                                " ORDER BY procore_id LIMIT %s", (count,)).fetchall()
        if len(rows) >= count:
            return [(int(a), int(b)) for a, b in rows]
        time.sleep(1)
    raise RuntimeError("the initial sync stored too few RFIs to measure freshness")


def _measure(sim: SimHandle, database_url: str, targets: list[tuple[int, int]], gap_s: float) -> list[float]:
    latencies = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        for rfi_id, project_id in targets:
            started = time.monotonic()
            (change,) = sim.mutate("update", "rfi", id=rfi_id, project_id=project_id)
            while time.monotonic() - started < DEADLINE_S:
                row = conn.execute("SELECT procore_updated_at >= %s::timestamptz FROM rfis"
                                   " WHERE kind = 'rfi' AND procore_id = %s", (change["updated_at"], rfi_id)
                                   ).fetchone()
                if row and row[0]:
                    break
                time.sleep(0.05)
            latencies.append(time.monotonic() - started)
            time.sleep(gap_s)
    return latencies


def one_run(tmp_dir: Path, *, webhooks: bool) -> tuple[list[float], int]:
    """(latencies, scheduled jobs still queued when measuring started)."""
    pg_spec, pg = start_postgres(tmp_dir / "stack")
    redis_spec, redis_server = start_redis(tmp_dir / "stack")
    try:
        db.apply_schema(pg_spec.owner_url, app_role=pg_spec.user)
        with running_simulator(tmp_dir / "sim", projects=PROJECTS, items=5000, rate_limit="100/6",
                               spike="25/1") as sim:
            port = free_port()
            env = _env(sim, pg_spec.url, redis_spec.url, tmp_dir, port)
            names = ["webhook", "fetcher_priority", "fetcher", "fetcher", "differ", "scheduler"]
            with _processes(env, names, tmp_dir / "logs"):
                if webhooks:
                    subprocess.run([sys.executable, "-m", "eva00", "webhooks", "register", "--url",
                                    f"http://127.0.0.1:{port}/webhooks/procore"], env=env, check=True,
                                   capture_output=True, timeout=120)
                targets = _wait_for_rfis(pg_spec.url, CHANGES)
                client = redis.Redis.from_url(redis_spec.url)
                if not webhooks:
                    # Polling freshness is bounded by the interval once the initial sync is done:
                    # then at most one RFI poll per project is queued at a time, for a whole
                    # interval (a short lull between the initial sync's phases is not the end).
                    _wait_until_steady(client, steady_jobs=PROJECTS, hold_s=2 * POLL_S)
                backlog = _scheduled_backlog(client)
                return _measure(sim, pg_spec.url, targets, gap_s=0.5 if webhooks else 1.0), backlog
    finally:
        redis_server.stop()
        pg.stop()


def _scheduled_backlog(client: redis.Redis) -> int:
    rows = backlog_rows(client)
    return sum(r.pending + r.lag for r in rows if r.stream == keys.STREAM_SYNC_SCHEDULED)


def _wait_until_steady(client: redis.Redis, steady_jobs: int, hold_s: float,
                       timeout_s: float = 1200.0) -> None:
    deadline = time.monotonic() + timeout_s
    steady_since = None
    while time.monotonic() < deadline:
        if _scheduled_backlog(client) > steady_jobs:
            steady_since = None
        elif steady_since is None:
            steady_since = time.monotonic()
        elif time.monotonic() - steady_since >= hold_s:
            return
        time.sleep(1)
    raise RuntimeError(f"the initial sync never settled in {timeout_s:.0f} s")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    hooked, backlog = one_run(tmp_dir / "webhooks", webhooks=True)
    polled, _ = one_run(tmp_dir / "polling", webhooks=False)
    p95_hooked, p95_polled = _pct(hooked, 0.95), _pct(polled, 0.95)
    return [
        {"name": "freshness with webhooks, p50 (scheduled budget saturated)",
         "value": statistics.median(hooked), "unit": "s", "goal": "< 3",
         "met": statistics.median(hooked) < 3},
        {"name": "freshness with webhooks, p95 (scheduled budget saturated)", "value": p95_hooked,
         "unit": "s", "goal": "< 3", "met": p95_hooked < 3},
        {"name": "scheduled jobs queued while measuring (saturation)", "value": backlog, "unit": "jobs",
         "goal": "> 0", "met": backlog > 0},
        {"name": f"freshness by polling only, p50 (RFI poll every {POLL_S} s)",
         "value": statistics.median(polled), "unit": "s", "goal": f"<= {POLL_S + 10}",
         "met": statistics.median(polled) <= POLL_S + 10},
        {"name": "freshness by polling only, p95 / poll interval", "value": p95_polled / POLL_S,
         "unit": "ratio", "goal": "<= 1.5", "met": p95_polled / POLL_S <= 1.5},
    ]


if __name__ == "__main__":
    import tempfile

    for figure in run(Path(tempfile.mkdtemp(prefix="eva00-bench-fresh-"))):
        print(f"{figure['name']}: {figure['value']:.3f} {figure['unit']} (goal {figure['goal']})")
