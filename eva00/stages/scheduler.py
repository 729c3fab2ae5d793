"""The scheduler stage: enqueues poll jobs per project and entity type.

Adaptive (the default): every few seconds it enqueues the due (kind, project) pairs of the poll
plan (eva00/replica/plans.py), as many as the scheduled budget allows, active pairs first; each
finished poll plans the pair's next one from what it found. Fixed (EVA00_SCHEDULE=fixed): every
pair at its family's interval, as the seed did.

Delivery guarantee: at least once per interval. A job for (kind, project) is enqueued only while
no earlier one is pending (a Redis SET NX key, released by PendingMarkers below, a middleware of
the fetcher's and the differ's stages, when that poll ends, and expiring by itself so a lost job
never blocks its kind for long). Losing Redis loses at most the
pending markers and queued jobs; the next tick enqueues again and the cursors in PostgreSQL make
the re-poll cheap. New projects are noticed within ``project_watch_s`` and polled at once.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.fullsync.run import FullSync, held_units
from eva00.kinds import COMPANY_LEVEL_KINDS, FAMILY_KINDS
from eva00.messages import BudgetClass, Message, PageMessage, PollJob, PollMode
from eva00.ops.archive import ArchiveBusy, Archiver
from eva00.replica import plans, polls
from eva00.runtime import alerts
from eva00.runtime.bus import Bus, Delivery, Outgoing
from eva00.runtime.middleware import Middleware
from eva00.webhooks.retention import prune_webhook_events

log = logging.getLogger(__name__)

# The pending marker outlives a normal poll by far, yet a job lost with Redis or dead-lettered
# frees its kind again after this many intervals.
PENDING_TTL_INTERVALS = 3
MIN_PENDING_TTL_S = 600
HOUSEKEEPING_S = 6 * 3600
HEAL_EVERY_STEPS = 12  # full-sync ticks between two looks for jobs Redis lost
# Finished polls are read again this far back: a page's committed_at is its transaction's start.
OBSERVE_OVERLAP_S = 300.0
BUDGET_CHECK_S = 60.0
BUDGET_ALERT = "schedule-budget-short"


class Scheduler:
    def __init__(self, settings: Settings, client: redis.Redis, pool: ConnectionPool, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.redis = client
        self.bus = Bus(client, "scheduler")
        self.pool = pool
        self.clock = clock
        self.known_projects: set[int] = set()
        self.full_sync_ticks = 0
        self.rules = plans.PlanRules(settings.max_staleness_s, settings.active_window_s)
        self._allowance = 0.0  # scheduled requests the plan may still enqueue
        self._last_plan_s: float | None = None
        self._observed_at: datetime | None = None  # database time of the last look at finished polls
        self._planned_projects: dict[int, bool] | None = None
        self._budget_checked_s = float("-inf")

    # --- what to poll ---

    def live_project_ids(self) -> list[int]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT procore_id FROM projects WHERE kind = 'project' AND NOT is_deleted"
                " ORDER BY procore_id").fetchall()
        return [int(row[0]) for row in rows]

    def project_states(self) -> dict[int, bool]:
        """Live project id -> open (Procore's ``active``; a project without the field is open)."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT procore_id, coalesce(payload->>'active', 'true') <> 'false' FROM projects"
                " WHERE kind = 'project' AND NOT is_deleted ORDER BY procore_id").fetchall()
        return {int(p): bool(open_) for p, open_ in rows}

    def jobs_for(self, kinds: Iterable[str], project_ids: Iterable[int], mode: str,
                 reason: str) -> list[PollJob]:
        projects = list(project_ids)
        jobs = []
        now = self.clock()
        for kind in kinds:
            targets: list[int | None] = [None] if kind in COMPANY_LEVEL_KINDS else list(projects)
            for project_id in targets:
                jobs.append(PollJob(kind=kind, project_id=project_id, mode=mode,
                                    budget=BudgetClass.SCHEDULED, reason=reason,
                                    requested_at=now))
        return jobs

    # --- enqueueing ---

    def enqueue(self, jobs: Iterable[PollJob], ttl_s: int) -> int:
        """Publish each job whose (kind, project, mode) has none pending and that no running full
        sync is about to fetch; returns how many."""
        return len(self._publish(jobs, ttl_s))

    def _publish(self, jobs: Iterable[PollJob], ttl_s: int) -> list[PollJob]:
        jobs = list(jobs)
        with self.pool.connection() as conn:
            held = held_units(conn, sorted({j.project_id for j in jobs if j.project_id is not None}))
        published = []
        for job in jobs:
            if (job.kind, job.project_id) in held:
                continue
            marker = keys.job_pending_key(f"{job.kind}:{job.mode}", job.project_id)
            if not self.redis.set(marker, job.reason, nx=True, ex=ttl_s):
                continue
            job = dataclasses.replace(job, pending_key=marker)
            self.bus.publish(keys.STREAM_SYNC_SCHEDULED, job)
            published.append(job)
        return published

    # --- the adaptive plan ---

    def tick_plan(self) -> int:
        """Learn from the polls finished since the last tick, then enqueue the due pairs the
        scheduled budget allows (it accrues at EVA00_BUDGET_SCHEDULED_PER_MIN, at most a minute's
        worth). Returns how many jobs were enqueued."""
        now_s = self.clock()
        budget = float(self.settings.budget_scheduled_per_min)
        elapsed_s = self.settings.plan_tick_s if self._last_plan_s is None else now_s - self._last_plan_s
        self._last_plan_s = now_s
        self._allowance = min(budget, self._allowance + budget * max(0.0, elapsed_s) / 60.0)
        now = datetime.fromtimestamp(now_s, UTC)
        states = self.project_states()
        closed = frozenset(p for p, open_ in states.items() if not open_)
        with self.pool.connection() as conn:
            if states != self._planned_projects:
                self._plan_pairs(conn, states, now)
            self._observe(conn, closed, now)
            due = plans.due_pairs(conn, now, list(states), limit=int(self._allowance) + 1)
        chosen: list[plans.DuePair] = []
        spent = 0.0
        for pair in due:
            if spent + pair.cost > self._allowance:
                break
            chosen.append(pair)
            spent += pair.cost
        cost = {(p.kind, p.project_id or None): p.cost for p in chosen}
        jobs = [PollJob(kind=p.kind, project_id=p.project_id or None, mode=PollMode.INCREMENTAL,
                        budget=BudgetClass.SCHEDULED, reason="schedule:plan", requested_at=now_s)
                for p in chosen]
        published = self._publish(jobs, ttl_s=self._ttl(max((p.interval_s for p in chosen), default=0)))
        self._allowance -= sum(cost[(j.kind, j.project_id)] for j in published)
        with self.pool.connection() as conn:
            # pending or held ones too: their poll is on its way, so they are not due again now
            plans.mark_planned(conn, [(p.kind, p.project_id) for p in chosen], now)
        if now_s - self._budget_checked_s >= BUDGET_CHECK_S:
            self._budget_checked_s = now_s
            self.check_budget(list(states))
        return len(published)

    def _plan_pairs(self, conn: psycopg.Connection, states: dict[int, bool], now: datetime) -> None:
        seeds = {kind: self.settings.poll_intervals_s[family]
                 for family, kinds in FAMILY_KINDS.items() for kind in kinds}
        pairs = [(kind, 0 if kind in COMPANY_LEVEL_KINDS else project)
                 for kind in seeds for project in ([0] if kind in COMPANY_LEVEL_KINDS else states)]
        created = plans.ensure_plans(conn, pairs, seeds, now)
        plans.close_projects(conn, self.rules, [p for p, open_ in states.items() if not open_], now)
        self._planned_projects = dict(states)
        if created:
            log.info("poll plan: %d (kind, project) pairs added, due now", created)

    def _observe(self, conn: psycopg.Connection, closed: frozenset[int], now: datetime) -> None:
        row = conn.execute("SELECT now(), (SELECT max(last_finished_at) FROM poll_plans)").fetchone()
        assert row is not None
        db_now, newest = row
        since = self._observed_at or newest or db_now - timedelta(seconds=self.settings.reconcile_interval_s)
        finished = plans.finished_polls_since(conn, since - timedelta(seconds=OBSERVE_OVERLAP_S))
        woken = plans.apply_polls(conn, self.rules, finished, closed, now)
        self._observed_at = db_now
        if woken:
            log.info("poll plan: projects %s changed after a quiet spell; every kind polled within"
                     " its family's interval", woken)

    def check_budget(self, project_ids: list[int]) -> bool:
        """One alert while the budget cannot poll even the active pairs at their family's
        interval; resolved when it can. Returns whether it can."""
        budget = self.settings.budget_scheduled_per_min
        with self.pool.connection() as conn:
            families = plans.demand(conn, FAMILY_KINDS, project_ids)
            active_per_min = sum(f.seed_per_min * f.active_pairs / f.pairs for f in families if f.pairs)
            if active_per_min <= budget:
                alerts.resolve_alert(conn, BUDGET_ALERT)
                return True
            alerts.raise_alert(
                conn, BUDGET_ALERT, "warning",
                f"the active (kind, project) pairs need {active_per_min:.0f} requests a minute at their"
                f" families' intervals, more than the scheduled budget of {budget}: they are polled"
                " less often (raise EVA00_BUDGET_SCHEDULED_PER_MIN if Procore allows, or lengthen"
                " EVA00_POLL_INTERVALS)")
            return False

    def tick_family(self, family: str) -> int:
        interval_s = self.settings.poll_intervals_s[family]
        kinds = FAMILY_KINDS[family]
        projects = self.live_project_ids() if set(kinds) - COMPANY_LEVEL_KINDS else []
        jobs = self.jobs_for(kinds, projects, PollMode.INCREMENTAL, f"schedule:{family}")
        added = self.enqueue(jobs, ttl_s=self._ttl(interval_s))
        log.info("%s: %d poll jobs enqueued (%d already pending)", family, added, len(jobs) - added)
        return added

    def tick_reconcile(self) -> int:
        projects = self.live_project_ids()
        all_kinds = [kind for kinds in FAMILY_KINDS.values() for kind in kinds]
        jobs = self.jobs_for(all_kinds, projects, PollMode.RECONCILE, "schedule:reconcile")
        added = self.enqueue(jobs, ttl_s=self._ttl(int(self.settings.reconcile_interval_s)))
        log.info("delete reconciliation: %d jobs enqueued", added)
        return added

    def watch_projects(self) -> int:
        """Poll every family at once for projects that appeared since the last look."""
        current = set(self.live_project_ids())
        if not self.known_projects and self.settings.schedule_mode == "adaptive":
            # A restarted scheduler: projects the plan already holds are not new, so a restart
            # does not poll every pair of every project at once past the budget.
            with self.pool.connection() as conn:
                self.known_projects = current & {int(r[0]) for r in conn.execute(
                    "SELECT DISTINCT project_id FROM poll_plans WHERE project_id <> 0")}
        new = sorted(current - self.known_projects)
        self.known_projects = current
        if not new:
            return 0
        added = 0
        for family, kinds in FAMILY_KINDS.items():
            project_kinds = [k for k in kinds if k not in COMPANY_LEVEL_KINDS]
            jobs = self.jobs_for(project_kinds, new, PollMode.INCREMENTAL, "new-project")
            added += self.enqueue(jobs, ttl_s=self._ttl(self.settings.poll_intervals_s[family]))
        log.info("projects %s: %d poll jobs enqueued", new, added)
        return added

    def tick_full_sync(self) -> int:
        """Advance every running full sync, so a run goes on with nobody watching it: its next
        phase once the last one settled, and (every HEAL_EVERY_STEPS ticks) the jobs Redis lost
        enqueued again from PostgreSQL. Returns how many runs are running."""

        with self.pool.connection() as conn:
            run_ids = [r[0] for r in conn.execute(
                "SELECT run_id FROM fullsync_runs WHERE status = 'running' ORDER BY started_at")]
        if not run_ids:
            return 0
        sync = FullSync(self.settings, self.redis, self.pool, clock=self.clock)
        self.full_sync_ticks += 1
        heal = self.full_sync_ticks % HEAL_EVERY_STEPS == 0
        for run_id in run_ids:
            run = sync.load(run_id)
            if run is None:
                continue
            if heal:
                # Only jobs quiet for a whole heal period: one on its way is in a stream by then.
                sync.heal(run, grace_s=HEAL_EVERY_STEPS * self.settings.fullsync_step_s)
            sync.step(run)
        return len(run_ids)

    def housekeeping(self) -> int:
        """Archive old sync_log rows (then prune them), drop the id lists of reconciliations
        finished a day ago and finished webhook_events past their retention. Returns the sync_log
        rows archived."""
        import psycopg


        archived = 0
        with psycopg.connect(self.settings.effective_database_url, autocommit=True) as conn:
            try:
                archived = Archiver(self.settings, conn).run().rows
            except ArchiveBusy:
                log.info("sync_log archive already running elsewhere; skipped")
        with self.pool.connection() as conn:
            pruned = polls.prune_seen_ids(conn)
        with self.pool.connection() as conn:
            events = prune_webhook_events(conn, self.settings.webhook_events_retention_days)
        log.info("housekeeping: %d sync_log rows archived, %d reconciliation ids and %d webhook events"
                 " pruned", archived, pruned, events)
        return archived

    def _ttl(self, interval_s: int) -> int:
        return max(MIN_PENDING_TTL_S, PENDING_TTL_INTERVALS * interval_s)

    # --- running ---

    def build(self, project_watch_s: float = 30.0) -> object:
        """An APScheduler BlockingScheduler with every periodic job; the first runs happen now."""
        from apscheduler.schedulers.blocking import BlockingScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        scheduler = BlockingScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": 300})
        now = datetime.now(UTC)
        if self.settings.schedule_mode == "adaptive":
            scheduler.add_job(self._guarded(self.tick_plan),
                              IntervalTrigger(seconds=self.settings.plan_tick_s), id="poll:plan",
                              next_run_time=now)
        else:
            for family, interval_s in self.settings.poll_intervals_s.items():
                scheduler.add_job(self._guarded(self.tick_family), IntervalTrigger(seconds=interval_s),
                                  args=[family], id=f"poll:{family}", next_run_time=now)
        scheduler.add_job(self._guarded(self.watch_projects), IntervalTrigger(seconds=project_watch_s),
                          id="watch-projects", next_run_time=now)
        scheduler.add_job(self._guarded(self.tick_reconcile),
                          IntervalTrigger(seconds=self.settings.reconcile_interval_s),
                          id="reconcile")
        scheduler.add_job(self._guarded(self.tick_full_sync),
                          IntervalTrigger(seconds=self.settings.fullsync_step_s), id="full-sync",
                          next_run_time=now)
        scheduler.add_job(self._guarded(self.housekeeping), IntervalTrigger(seconds=HOUSEKEEPING_S),
                          id="housekeeping")
        return scheduler

    @staticmethod
    def _guarded(action: Callable[..., int]) -> Callable[..., None]:
        """A tick that fails (Redis or PostgreSQL away) is logged; the next tick tries again."""

        def run(*args: object) -> None:
            try:
                action(*args)
            except Exception:
                log.exception("scheduler tick %s failed; the next tick retries", action.__name__)

        run.__name__ = action.__name__
        return run


class PendingMarkers(Middleware):
    """Releases a poll's pending marker when the poll ends, in the fetcher's and the differ's
    stages. The marker travels with the poll: the scheduler puts its key on the job, and the
    fetcher carries it on to each page and next-page job. It is released

    - after COMMIT of a poll job whose outgoing entries carry it no further: the poll ended
      without pages (no drawing areas to list, a refusal, a parent gone);
    - after COMMIT of the page whose transaction finished the poll (its last page committed):
      only that delivery, so a page redelivered later never frees a marker set for a newer poll;
    - when a poll job is dead-lettered, so the next tick polls its kind again at once.

    Released after COMMIT, so a transaction that rolls back leaves its poll pending. A marker
    never released (a crash just after COMMIT, a job lost with Redis) expires by itself."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        # (entry id, marker) of the page whose transaction finished its poll, until its COMMIT.
        self._finished: tuple[str, str] | None = None

    def after_handle(self, conn: psycopg.Connection, message: Message, delivery: Delivery,
                     outgoing: Sequence[Outgoing]) -> None:
        self._finished = None
        if (isinstance(message, PageMessage) and message.pending_key
                and polls.finished_in_this_transaction(conn, message.poll_id)):
            self._finished = (delivery.entry_id, message.pending_key)

    def after_commit(self, message: Message, delivery: Delivery, outgoing: Sequence[Outgoing]) -> None:
        if isinstance(message, PollJob) and message.pending_key and not any(
                isinstance(m, (PollJob, PageMessage)) and m.pending_key == message.pending_key
                for _s, m in outgoing):
            self._release(message.pending_key)
        finished, self._finished = self._finished, None
        if finished is not None and finished[0] == delivery.entry_id:
            self._release(finished[1])

    def after_dead_letter(self, message: Message | None, delivery: Delivery, error: str) -> None:
        if isinstance(message, PollJob) and message.pending_key:
            self._release(message.pending_key)

    def _release(self, marker: str) -> None:
        self.redis.delete(marker)
