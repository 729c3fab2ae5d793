"""Freshness at a real company's size (issue 18): 200 projects inside the scheduled budget.

The simulator plays a company of 200 projects (20% busy with 80% of the changes, 40% quiet,
40% closed) on a clock ``TIME_SCALE`` times faster than Procore's: its rate windows are that many
times shorter, and our settings are scaled by the same factor (every family's interval, the
maximum staleness, the active window, the plan tick and the limiter's window, refill and budgets
per minute), so every ratio between a poll interval, the budget and the limit holds. All figures
are given in Procore time (real seconds x ``TIME_SCALE``).

After an initial load (limits off; it stands for the company's last day: the busy projects'
changing kinds found a change, nothing else did, so the plan starts in its steady state) the same
in-process pipeline (fetcher and differ threads, eva00/proof/pipeline_local.py) runs twice for
``RUN_S`` of Procore time while the bench changes records at a steady rate, 80% of them on the
busy projects:

- adaptive: the scheduler's real ``tick_plan`` every plan tick;
- fixed: the seed's schedule, every family's ``tick_family`` at its interval, held to the same
  request rate (the limiter's refill set to the scheduled budget: a class alone may otherwise
  borrow the whole rate);

then the adaptive run again, shorter, with the webhook listener and a priority fetcher as in
production, its staleness in real seconds (see ``webhook_run``).

Staleness of a change = when its version first reached PostgreSQL (record_versions.first_seen_at)
minus when the bench made it. A change never seen by the end of the tail counts as stale until then.
Quiet and closed projects' kinds are checked on the plan the run left: every one is planned within
the maximum staleness of its last poll (a 24-hour window cannot be watched in a run this short).
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import DEFAULT_POLL_INTERVALS_S, ROOT_DIR, Settings
from eva00.kinds import FAMILY_KINDS, family_of
from eva00.ops.localstack import free_port
from eva00.procore import build_client
from eva00.proof.bench.services import local_services
from eva00.proof.pipeline_local import LocalPipeline, settings_for_simulator
from eva00.runtime.stage import Stage
from eva00.simulator.testing import SimHandle, SimulatorFailed, running_simulator
from eva00.stages.fetcher import Fetcher
from eva00.stages.middleware import fetcher_middleware

TIME_SCALE = int(os.environ.get("EVA00_BENCH_TIME_SCALE", "20"))
PROJECTS = 200
ITEMS = PROJECTS * 30  # files tiny: freshness is about listings
RUN_S = 2700.0  # Procore seconds of measured everyday polling per schedule
TAIL_S = 1800.0  # the longest changed family's interval: changes made late still get their poll
CHANGES_PER_HOUR = 600  # across the company, in Procore time (the webhook budget: 900)
BUSY_SHARE = 0.8
# Kinds the bench changes: one or more per family polled at most every 30 minutes.
CHANGED_KINDS = ("rfi", "submittal", "change_event", "potential_change_order", "meeting", "image",
                 "document", "drawing")
MAX_STALENESS_S = 86400.0
BUDGET_PER_MIN = 60  # production's scheduled budget
WEBHOOK_RUN_S = 900.0  # Procore seconds with webhooks: their latency is steady within minutes
WEBHOOK_TAIL_S = 200.0


@dataclass(frozen=True)
class Change:
    kind: str
    procore_id: int
    project_id: int
    busy: bool
    made_at: float  # epoch, real
    updated_at: str


@dataclass
class RunResult:
    mode: str
    changes: list[Change]
    staleness_s: list[float]  # Procore seconds, per change (same order)
    requests: int
    span_s: float  # Procore seconds
    violations: int


def scaled_settings(base: Settings, sim: SimHandle, scale: int) -> Settings:
    intervals = {family: max(1, seconds // scale) for family, seconds in DEFAULT_POLL_INTERVALS_S.items()}
    configured = settings_for_simulator(base, api_base=sim.api_base, login_base=sim.login_base,
                                        client_id=sim.client_id, client_secret=sim.client_secret,
                                        company_id=sim.company_id, unlimited=False)
    return configured.replace(
        poll_intervals_s=intervals, max_staleness_s=MAX_STALENESS_S / scale,
        active_window_s=base.active_window_s / scale, plan_tick_s=max(0.2, base.plan_tick_s / scale),
        rate_window_s=base.rate_window_s / scale, rate_refill_per_s=base.rate_refill_per_s * scale,
        budget_scheduled_per_min=BUDGET_PER_MIN * scale,
        budget_webhook_per_min=base.budget_webhook_per_min * scale,
        budget_on_demand_per_min=base.budget_on_demand_per_min * scale,
        budget_buffer_per_min=base.budget_buffer_per_min * scale,
        poll_lookback_s=max(2.0, base.poll_lookback_s / scale),
        poll_safety_margin_s=base.poll_safety_margin_s / scale,
        stream_block_ms=20)


def priority_fetcher(settings: Settings, client: redis.Redis, pool: ConnectionPool) -> Stage:
    """Production's fetcher_priority (supervisord.conf): webhook jobs only, so they never wait
    behind a scheduled job that waits for the limiter."""
    handler = Fetcher(settings, build_client(settings, client, pool), client)
    stage = Stage("fetcher", settings, client, pool, [(keys.STREAM_SYNC_PRIORITY, keys.GROUP_FETCHERS)],
                  handler, middleware=fetcher_middleware(client, handler), consumer="fetcher-priority-local")
    for stream, group in stage.inputs:
        stage.bus.ensure_group(stream, group)
    return stage


def _threads(pipeline: LocalPipeline, stop: threading.Event,
             extra: Stage | None = None) -> list[threading.Thread]:
    def loop(step: Callable[[], int]) -> Callable[[], None]:
        def run() -> None:
            while not stop.is_set():
                if not step():
                    time.sleep(0.005)
        return run
    steps = [pipeline.fetcher.step, pipeline.differ.step] + ([extra.step] if extra else [])
    threads = [threading.Thread(target=loop(step), daemon=True) for step in steps]
    for thread in threads:
        thread.start()
    return threads


def _change_some(sim: SimHandle, busy: list[int], quiet: list[int], rng: random.Random) -> Change | None:
    is_busy = rng.random() < BUSY_SHARE
    project = rng.choice(busy if is_busy else quiet)
    kind = rng.choice(CHANGED_KINDS)
    made_at = time.time()
    try:
        changed = sim.mutate("update", kind, project_id=project)
    except SimulatorFailed:
        return None  # nothing of that kind there
    first = changed[0]
    return Change(kind, int(first["id"]), project, is_busy, made_at, str(first["updated_at"]))


def _change_steadily(sim: SimHandle, busy: list[int], quiet: list[int], rng: random.Random,
                     changes: list[Change], until: float, gap_s: float) -> None:
    next_change = time.time()
    while (now := time.time()) < until:
        if now < next_change:
            time.sleep(min(0.05, next_change - now))
            continue
        change = _change_some(sim, busy, quiet, rng)
        if change is not None:
            changes.append(change)
        next_change += gap_s


def one_run(mode: str, sim: SimHandle, settings: Settings, client: redis.Redis, pool: ConnectionPool,
            busy: list[int], quiet: list[int], scale: int, run_s: float = RUN_S,
            tail_s: float = TAIL_S, staleness_scale: int | None = None) -> RunResult:
    pipeline = LocalPipeline.build(settings, client, pool)
    rng = random.Random(f"{mode}-{scale}")
    stop = threading.Event()
    violations_before = int(sim.stats().get("violations", 0))
    started = time.time()
    hooks_fetcher = priority_fetcher(settings, client, pool) if mode == "webhooks" else None
    threads = _threads(pipeline, stop, hooks_fetcher)
    changes: list[Change] = []
    run_end, tail_end = started + run_s / scale, started + (run_s + tail_s) / scale
    changer = threading.Thread(target=_change_steadily, args=(sim, busy, quiet, rng, changes, run_end,
                                                              3600.0 / CHANGES_PER_HOUR / scale), daemon=True)
    changer.start()
    threads.append(changer)
    next_tick = started
    next_family = {family: started for family in settings.poll_intervals_s}
    try:
        while (now := time.time()) < tail_end:
            if now >= next_tick:
                if mode != "fixed":
                    pipeline.scheduler.tick_plan()
                    next_tick = now + settings.plan_tick_s
                else:
                    for family, due in next_family.items():
                        if now >= due:
                            pipeline.scheduler.tick_family(family)
                            next_family[family] = due + settings.poll_intervals_s[family]
                    next_tick = now + 0.2
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    ended = time.time()
    calls = [e for e in sim.ledger() if e["host"] == "api" and "/oauth/" not in e["path"]
             and not e["path"].startswith("/_sim") and started <= e["t"] <= ended]
    staleness = _staleness(settings.effective_database_url, changes, ended,
                           scale if staleness_scale is None else staleness_scale)
    return RunResult(mode, changes, staleness, len(calls), (ended - started) * scale,
                     int(sim.stats().get("violations", 0)) - violations_before)


def _staleness(database_url: str, changes: list[Change], ended: float, scale: int) -> list[float]:
    result = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        for change in changes:
            row = conn.execute(
                "SELECT extract(epoch FROM min(first_seen_at)) FROM record_versions WHERE kind = %s"
                " AND procore_id = %s AND (payload->>'updated_at')::timestamptz >= %s::timestamptz",
                (change.kind, change.procore_id, change.updated_at)).fetchone()
            seen = float(row[0]) if row and row[0] is not None else ended
            result.append(max(0.0, seen - change.made_at) * scale)
    return result


def initial_load(sim: SimHandle, base: Settings, client: redis.Redis, pool: ConnectionPool,
                 busy: list[int]) -> None:
    """Every kind of every project once, limits off. The load's pages stand for the company's
    last day: the busy projects' changing kinds found a change (so the plan starts in its steady
    state, those pairs active, as a day of their changes would leave them), nothing else did."""
    unlimited = settings_for_simulator(base, api_base=sim.api_base, login_base=sim.login_base,
                                       client_id=sim.client_id, client_secret=sim.client_secret,
                                       company_id=sim.company_id)
    LocalPipeline.build(unlimited, client, pool).sync_everything()
    with pool.connection() as conn:
        conn.execute("UPDATE poll_pages SET changed = CASE WHEN project_id = ANY(%s) AND kind = ANY(%s)"
                     " AND is_last THEN 1 ELSE 0 END", (busy, list(CHANGED_KINDS)))


def plan_check(database_url: str, quiet_or_closed: list[int], max_staleness_s: float) -> tuple[int, int]:
    """(pairs of quiet or closed projects, those planned later than the maximum staleness after
    their last poll or never polled)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE last_finished_at IS NULL AND next_poll_at > now()"
            " + %s * interval '1 second' OR last_finished_at IS NOT NULL AND (interval_s > %s OR"
            " next_poll_at > last_finished_at + %s * interval '1 second'))"
            " FROM poll_plans WHERE project_id = ANY(%s)",
            (max_staleness_s, max_staleness_s, max_staleness_s, quiet_or_closed)).fetchone()
    assert rows is not None
    return int(rows[0]), int(rows[1])


def webhook_run(tmp_dir: Path, sim: SimHandle, settings: Settings, client: redis.Redis,
                pool: ConnectionPool, busy: list[int], quiet: list[int], scale: int) -> RunResult:
    """The adaptive run again with the webhook listener (processes/webhook.py) and our hook
    registered: each change is fetched on its own event. Its staleness is in real seconds: a
    webhook's path (delivery, the listener, one fetch, the differ) waits on no poll interval,
    only on work and the webhook budget, which is scaled with the clock like every budget."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": settings.effective_database_url, "REDIS_URL": settings.redis_url,
           "PROCORE_CLIENT_ID": sim.client_id, "PROCORE_CLIENT_SECRET": sim.client_secret,
           "PROCORE_COMPANY_ID": str(sim.company_id), "PROCORE_API_BASE": sim.api_base,
           "PROCORE_LOGIN_BASE": sim.login_base, "EVA00_VAR_DIR": str(tmp_dir / "var"),
           "EVA00_DATA_DIR": str(tmp_dir / "data"), "EVA00_WEBHOOK_PORT": str(port),
           "EVA00_RATE_WINDOW_S": str(settings.rate_window_s),
           "EVA00_RATE_REFILL_PER_S": str(settings.rate_refill_per_s),
           "EVA00_BUDGET_WEBHOOK_PER_MIN": str(settings.budget_webhook_per_min),
           "EVA00_BUDGET_SCHEDULED_PER_MIN": str(settings.budget_scheduled_per_min),
           "EVA00_BUDGET_BUFFER_PER_MIN": str(settings.budget_buffer_per_min),
           "PYTHONUNBUFFERED": "1", "SUPERVISOR_PROCESS_NAME": "webhook-0"}
    log_path = tmp_dir / "webhook.log"
    with log_path.open("ab") as log:
        listener = subprocess.Popen([sys.executable, str(ROOT_DIR / "processes" / "webhook.py")], env=env,
                                    stdout=log, stderr=log)
    try:
        subprocess.run([sys.executable, "-m", "eva00", "webhooks", "register", "--url",
                        f"http://127.0.0.1:{port}/webhooks/procore"], env=env, check=True,
                       capture_output=True, timeout=120)
        return one_run("webhooks", sim, settings, client, pool, busy, quiet, scale, run_s=WEBHOOK_RUN_S,
                       tail_s=WEBHOOK_TAIL_S, staleness_scale=1)
    finally:
        listener.terminate()
        try:
            listener.wait(30)
        except subprocess.TimeoutExpired:
            listener.kill()


def webhook_figures(hooked: RunResult, scale: int) -> list[dict[str, Any]]:
    busy = [s for c, s in zip(hooked.changes, hooked.staleness_s, strict=True) if c.busy]
    p50, p95 = _pct(busy, 0.5), _pct(busy, 0.95)
    per_hour = hooked.requests / (hooked.span_s / 3600.0)
    prefix = f"freshness at 200 projects (x{scale} clock, with webhooks)"
    return [
        {"name": f"{prefix}: busy projects' p50 staleness, real seconds ({len(busy)} changes)", "value": p50,
         "unit": "s", "goal": "< 1", "met": bool(busy) and p50 < 1},
        {"name": f"{prefix}: busy projects' p95 staleness, real seconds", "value": p95, "unit": "s",
         "goal": "< 1", "met": bool(busy) and p95 < 1},
        {"name": f"{prefix}: API requests per hour (every class)", "value": per_hour, "unit": "requests/h",
         "goal": f"<= {(BUDGET_PER_MIN + 15) * 60}", "met": per_hour <= (BUDGET_PER_MIN + 15) * 60},
        {"name": f"{prefix}: rate-limit violations", "value": hooked.violations, "unit": "requests",
         "goal": "== 0", "met": hooked.violations == 0},
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def table(adaptive: RunResult, fixed: RunResult, seeds: dict[str, int]) -> list[str]:
    """The 200-project freshness table: per family, busy projects' p50/p95 and mean staleness
    (Procore minutes), adaptive next to fixed."""
    lines = ["| Family | seed interval | adaptive p50 | adaptive p95 | adaptive mean | fixed p50 |"
             " fixed p95 | fixed mean | changes |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    families = sorted({family_of(c.kind) for c in adaptive.changes})
    for family in [*families, "all busy", "all quiet"]:
        rows = []
        for run in (adaptive, fixed):
            picked = [s for c, s in zip(run.changes, run.staleness_s, strict=True)
                      if (c.busy and family_of(c.kind) == family) or (family == "all busy" and c.busy)
                      or (family == "all quiet" and not c.busy)]
            rows.append(picked)
        seed = f"{seeds[family] / 60:.0f} min" if family in seeds else "-"
        cells = [f"{_pct(r, .5) / 60:.1f} | {_pct(r, .95) / 60:.1f} | "
                 f"{(statistics.fmean(r) if r else 0) / 60:.1f}" for r in rows]
        lines.append(f"| {family} | {seed} | {cells[0]} | {cells[1]} | {len(rows[0])} |")
    lines.append(f"Requests: adaptive {adaptive.requests} in {adaptive.span_s / 3600:.2f} h,"
                 f" fixed {fixed.requests} in {fixed.span_s / 3600:.2f} h"
                 " (Procore time; staleness in minutes).")
    return lines


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    with local_services(tmp_dir) as services:
        return _measure(tmp_dir, services.database_url, services.redis_url, TIME_SCALE)


def _measure(tmp_dir: Path, database_url: str, redis_url: str, scale: int) -> list[dict[str, Any]]:
    base = Settings.from_env({"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                              "EVA00_DATA_DIR": str(tmp_dir / "data"), "EVA00_VAR_DIR": str(tmp_dir / "var")},
                             dotenv=None)
    with running_simulator(tmp_dir / "sim", projects=PROJECTS, items=ITEMS, file_size_bytes=256,
                           active_share=0.2, inactive_share=0.4, time_scale=scale, rate_limit="off") as sim, \
            ConnectionPool(database_url, min_size=2, max_size=6) as pool:
        client = redis.Redis.from_url(redis_url)
        activity = sim.stats()["activity"]
        busy, quiet, closed = activity["active_ids"], activity["quiet_ids"], activity["closed_ids"]
        load_started = time.monotonic()
        initial_load(sim, base, client, pool, busy)
        load_s = time.monotonic() - load_started
        sim.configure(rate_limit="100/60", spike="25/10")  # Procore's, on the faster clock
        settings = scaled_settings(base, sim, scale)
        adaptive = one_run("adaptive", sim, settings, client, pool, busy, quiet, scale)
        quiet_pairs, late_pairs = plan_check(database_url, quiet + closed, settings.max_staleness_s)
        # The limiter lets a class alone borrow the whole rate; the fixed schedule gets the same
        # request count as the plan's budget by a refill rate equal to that budget.
        fixed_settings = settings.replace(schedule_mode="fixed",
                                          rate_refill_per_s=settings.budget_scheduled_per_min / 60.0)
        fixed = one_run("fixed", sim, fixed_settings, client, pool, busy, quiet, scale)
        hooked = webhook_run(tmp_dir, sim, settings, client, pool, busy, quiet, scale)
    seeds = dict(DEFAULT_POLL_INTERVALS_S)
    lines = table(adaptive, fixed, seeds)
    (tmp_dir / "freshness_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"initial load of {PROJECTS} projects: {load_s:.0f} s")
    return figures(adaptive, fixed, seeds, quiet_pairs, late_pairs, scale) + webhook_figures(hooked, scale)


def figures(adaptive: RunResult, fixed: RunResult, seeds: dict[str, int], quiet_pairs: int,
            late_pairs: int, scale: int) -> list[dict[str, Any]]:
    prefix = f"freshness at 200 projects (x{scale} clock, polling only)"
    out: list[dict[str, Any]] = []
    for run in (adaptive, fixed):
        per_hour = run.requests / (run.span_s / 3600.0)
        goal = BUDGET_PER_MIN * 60
        out.append({"name": f"{prefix}, {run.mode}: API requests per hour", "value": per_hour,
                    "unit": "requests/h", "goal": f"<= {goal}", "met": per_hour <= goal})
        out.append({"name": f"{prefix}, {run.mode}: rate-limit violations", "value": run.violations,
                    "unit": "requests", "goal": "== 0", "met": run.violations == 0})
    for family in sorted({family_of(c.kind) for c in adaptive.changes}):
        values = [s for c, s in zip(adaptive.changes, adaptive.staleness_s, strict=True)
                  if c.busy and family_of(c.kind) == family]
        p95, seed = _pct(values, 0.95), seeds[family]
        out.append({"name": f"{prefix}: busy projects' {family} p95 staleness ({len(values)} changes)",
                    "value": p95, "unit": "s", "goal": f"<= {seed}", "met": bool(values) and p95 <= seed})
    out.append({"name": f"{prefix}: quiet and closed projects' kinds planned later than the maximum"
                        f" staleness after their last poll (of {quiet_pairs})",
                "value": late_pairs, "unit": "pairs", "goal": "== 0",
                "met": late_pairs == 0 and quiet_pairs > 0})
    busy_adaptive = [s for c, s in zip(adaptive.changes, adaptive.staleness_s, strict=True) if c.busy]
    busy_fixed = [s for c, s in zip(fixed.changes, fixed.staleness_s, strict=True) if c.busy]
    ratio = statistics.fmean(busy_fixed) / max(1e-9, statistics.fmean(busy_adaptive)) \
        if busy_adaptive and busy_fixed else 0.0
    out.append({"name": f"{prefix}: busy projects' mean staleness, fixed / adaptive"
                        f" ({fixed.requests} / {adaptive.requests} requests)",
                "value": ratio, "unit": "ratio", "goal": ">= 2", "met": ratio >= 2})
    return out


if __name__ == "__main__":
    import tempfile

    for figure in run(Path(tempfile.mkdtemp(prefix="eva00-bench-fresh-scale-"))):
        print(f"{figure['name']}: {figure['value']:.3f} {figure['unit']} (goal {figure['goal']})")
    print(f"(measured {datetime.now(UTC):%H:%M} UTC, families {len(FAMILY_KINDS)})")
