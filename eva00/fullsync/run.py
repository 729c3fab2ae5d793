"""The initial full sync: the seed's four phases through the everyday streams and stages.

The command only enqueues and watches. A run enqueues FULL poll jobs (budget "scheduled") on
eva00:sync:scheduled; the fetchers and the differ do the work exactly as for everyday polls. Phase
N+1's jobs are enqueued once every job of phase N has settled (its page committed by the differ);
within a phase, project-scoped kinds wait for the run's project poll, drawings for their project's
drawing areas. File downloads (eva00:files:p1..p5) overlap by themselves.

Resumable: every job of a run is in PostgreSQL (eva00/fullsync/ledger.py). ``heal`` re-enqueues
the jobs that are queued there and in no stream (Redis wiped, a stop, a crash between COMMIT and
XADD), so a re-run continues where the run stopped; a job whose page is committed is never fetched
again. Stopping the command (Ctrl-C) leaves a consistent state: the stages keep running and the
next run of the command picks up the same run.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.fullsync import ledger
from eva00.fullsync.reasons import RunError
from eva00.kinds import COMPANY_LEVEL_KINDS
from eva00.messages import MAX_RERUNS, BudgetClass, Message, PageMessage, PollJob, PollMode, decode
from eva00.procore.endpoints import endpoint_for
from eva00.runtime.bus import Bus, owed_entries

log = logging.getLogger(__name__)

# Kinds listed per parent record wait for their parent kind's poll in the same project.
WAITS_FOR = {"drawing": "drawing_area"}
RATE_WINDOW_S = 60  # the measured request rate (for the ETA) is over this many seconds
# A listing whose counts kept disagreeing through the fetcher's immediate re-runs (a burst of wrong
# Totals, records moving while it paged) is polled again by the run this many more times, after
# EVA00_BAD_ANSWER_RETRY_S, then twice that, ...: a transient cause passes, a lasting one still
# ends the run incomplete with the reason.
LISTING_RETRIES = 3

# A ledger row not yet settled: queued, or its page went out and never committed.
_UNSETTLED = ("(j.state = 'queued' OR (j.outcome = 'paged' AND NOT EXISTS (SELECT 1 FROM poll_pages p"
              " WHERE p.poll_id = j.poll_id AND p.page = j.page)))")


@dataclass(frozen=True)
class Run:
    run_id: str
    project_ids: list[int] | None
    phases: list[int]
    status: str
    started_at: float  # epoch seconds
    finished_at: float | None
    reason: str | None


class FullSync:
    def __init__(self, settings: Settings, client: redis.Redis, pool: ConnectionPool, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.redis = client
        self.bus = Bus(client, "full-sync")
        self.pool = pool
        self.clock = clock

    # --- runs ---

    def start(self, project_ids: Sequence[int] | None, phases: Sequence[int], *, new: bool = False) -> Run:
        """The latest run of this scope: resumed if running, reopened if incomplete (its refused
        listings and those whose counts kept disagreeing are tried again, nothing else), as it is
        if complete; a new run if there is none or ``new`` is set."""
        scope = sorted(project_ids) if project_ids else None
        wanted = sorted(set(phases))
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT run_id, status FROM fullsync_runs WHERE phases = %s::int[]"
                " AND project_ids IS NOT DISTINCT FROM %s::bigint[] ORDER BY started_at DESC LIMIT 1",
                (wanted, scope)).fetchone()
            if row is None or new:
                run_id = f"fs-{uuid.uuid4().hex[:12]}"
                conn.execute("INSERT INTO fullsync_runs (run_id, project_ids, phases)"
                             " VALUES (%s, %s::bigint[], %s::int[])", (run_id, scope, wanted))
            else:
                run_id = row[0]
                if row[1] == "incomplete":
                    retried = conn.execute(
                        "UPDATE fullsync_jobs SET state = 'queued', outcome = NULL, error = NULL,"
                        " done_at = NULL WHERE run_id = %s AND outcome = 'refused'", (run_id,)).rowcount
                    retried += _rerun_incomplete_listings(conn, run_id)
                    conn.execute("UPDATE fullsync_runs SET status = 'running', finished_at = NULL,"
                                 " reason = NULL WHERE run_id = %s", (run_id,))
                    log.info("full sync %s reopened: %d refused listings are tried again", run_id, retried)
        run = self.load(run_id)
        assert run is not None
        return run

    def load(self, run_id: str | None = None) -> Run | None:
        """A run by id, or the latest one."""
        with self.pool.connection() as conn:
            runs = load_runs(conn, run_id, limit=1)
        return runs[0] if runs else None

    # --- one step of the watcher ---

    def step(self, run: Run) -> Run:
        """Enqueue what the current phase may start now; finish the run when every phase settled."""
        if run.status != "running":
            return run
        with self.pool.connection() as conn:
            for phase in run.phases:
                every = self._units(conn, run, phase, ready_only=False)
                if every is None or not self._phase_settled(conn, run, phase, every):
                    self._enqueue(conn, run, self._units(conn, run, phase, ready_only=True) or [])
                    return run
            if self._retry_incomplete_listings(conn, run):
                return run
            errors = self.errors(conn, run.run_id)
            status = "incomplete" if errors else "complete"
            conn.execute("UPDATE fullsync_runs SET status = %s, finished_at = now(), reason = %s"
                         " WHERE run_id = %s AND status = 'running'",
                         (status, "; ".join(errors[:20]) or None, run.run_id))
        log.info("full sync %s: %s", run.run_id, status)
        loaded = self.load(run.run_id)
        assert loaded is not None
        return loaded

    def _retry_incomplete_listings(self, conn: psycopg.Connection[Any], run: Run) -> bool:
        """True while a listing whose counts kept disagreeing waits for, or got, another poll."""
        waiting = False
        due = []
        for key, job_json, _kind, _project, age_s in conn.execute(
                _INCOMPLETE_LISTINGS + " ORDER BY j.job_key", (run.run_id,)).fetchall():
            last = PollJob.from_dict(job_json)
            retry = last.rerun - MAX_RERUNS  # 0 for the first retry of the run
            if retry >= LISTING_RETRIES:
                continue
            waiting = True
            if float(age_s or 0.0) >= self.settings.bad_answer_retry_s * 2 ** max(retry, 0):
                due.append((key, last))
        if due:
            again = [_record_again(conn, key, last) for key, last in due]
            conn.commit()  # durable before it is on a stream: a crash in between is healed
            for job in again:
                log.warning("full sync %s: %s in project %s kept disagreeing; polling it again",
                            run.run_id, job.kind, job.project_id)
                self.bus.publish(keys.STREAM_SYNC_SCHEDULED, job)
        return waiting

    def _units(self, conn: psycopg.Connection[Any], run: Run, phase: int,
               ready_only: bool) -> list[tuple[str, int | None]] | None:
        """(kind, project) pairs of the phase (only those that may start now if ``ready_only``);
        None while the run's projects are not known yet."""
        units: list[tuple[str, int | None]] = []
        projects = self._projects(conn, run)
        if projects is None and (not ready_only or phase != 1):
            return None
        for kind in ledger.PHASES[phase]:
            if kind in COMPANY_LEVEL_KINDS:
                units.append((kind, None))
            elif projects is not None:
                waits = WAITS_FOR.get(kind) if ready_only else None
                units += [(kind, p) for p in projects
                          if waits is None or self._settled(conn, run.run_id, waits, p)]
        return units

    def _projects(self, conn: psycopg.Connection[Any], run: Run) -> list[int] | None:
        """The run's projects, once its own project poll (if it has one) settled."""
        if 1 in run.phases and not self._settled(conn, run.run_id, "project", None):
            return None
        rows = conn.execute("SELECT procore_id FROM projects WHERE kind = 'project' AND NOT is_deleted"
                            " ORDER BY procore_id").fetchall()
        live = [int(r[0]) for r in rows]
        return [p for p in live if run.project_ids is None or p in run.project_ids]

    @staticmethod
    def _settled(conn: psycopg.Connection[Any], run_id: str, kind: str, project_id: int | None) -> bool:
        row = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {_UNSETTLED}) FROM fullsync_jobs j"
            " WHERE j.run_id = %s AND j.kind = %s AND coalesce(j.project_id, 0) = coalesce(%s, 0)",
            (run_id, kind, project_id)).fetchone()
        return row is not None and row[0] > 0 and row[1] == 0

    @staticmethod
    def _phase_settled(conn: psycopg.Connection[Any], run: Run, phase: int,
                       units: list[tuple[str, int | None]]) -> bool:
        enqueued = {(r[0], r[1]) for r in conn.execute(
            "SELECT kind, project_id FROM fullsync_jobs WHERE run_id = %s AND phase = %s"
            " AND job_key LIKE 'plan:%%:0:0'", (run.run_id, phase))}
        if any(unit not in enqueued for unit in units):
            return False
        row = conn.execute(f"SELECT count(*) FROM fullsync_jobs j WHERE j.run_id = %s AND j.phase = %s"
                           f" AND {_UNSETTLED}", (run.run_id, phase)).fetchone()
        return row is not None and row[0] == 0

    def _enqueue(self, conn: psycopg.Connection[Any], run: Run,
                 units: Iterable[tuple[str, int | None]]) -> int:
        now = self.clock()
        jobs = [PollJob(kind=kind, project_id=project, mode=PollMode.FULL, budget=BudgetClass.SCHEDULED,
                        reason=f"full-sync:phase {ledger.phase_of(kind)}", requested_at=now,
                        run_id=run.run_id) for kind, project in units]
        fresh = [job for job in jobs if conn.execute(
            "INSERT INTO fullsync_jobs (run_id, job_key, phase, kind, project_id, job)"
            " VALUES (%s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING RETURNING 1",
            (run.run_id, ledger.job_key(job), ledger.phase_of(job.kind), job.kind, job.project_id,
             _json(job))).fetchone()]
        conn.commit()  # durable before it is on a stream: a crash in between is healed
        for job in fresh:
            self.bus.publish(keys.STREAM_SYNC_SCHEDULED, job)
        if fresh:
            log.info("full sync %s: %d jobs enqueued", run.run_id, len(fresh))
        return len(fresh)

    # --- resuming ---

    def heal(self, run: Run, grace_s: float = 0.0) -> int:
        """Re-enqueue the run's unsettled jobs that no stream holds; returns how many."""
        live = live_keys(self.redis)
        with self.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT j.job_key, j.parent_key, j.job, j.poll_id || ':' || j.page FROM fullsync_jobs j"
                f" WHERE j.run_id = %s"
                f" AND {_UNSETTLED} AND coalesce(j.done_at, j.created_at) < now() - make_interval(secs => %s)"
                " ORDER BY j.created_at, j.job_key", (run.run_id, grace_s)).fetchall()
        # A job is still on its way if it, the page it sent, or the job that made it is in a stream.
        orphans = [PollJob.from_dict(job) for key, parent, job, page in rows
                   if not {key, page, parent} & live]
        for job in orphans:
            self.bus.publish(keys.STREAM_SYNC_SCHEDULED, job)
        if orphans:
            log.info("full sync %s: %d jobs re-enqueued from PostgreSQL", run.run_id, len(orphans))
        return len(orphans)

    # --- reporting ---

    def errors(self, conn: psycopg.Connection[Any], run_id: str) -> list[str]:
        return run_errors(conn, run_id)


def load_runs(conn: psycopg.Connection[Any], run_id: str | None = None, limit: int = 1) -> list[Run]:
    """One run by id, or the latest ``limit`` runs, newest first."""
    rows = conn.execute(
        "SELECT run_id, project_ids, phases, status, extract(epoch FROM started_at),"
        " extract(epoch FROM finished_at), reason FROM fullsync_runs"
        " WHERE run_id = coalesce(%s, run_id) ORDER BY started_at DESC LIMIT %s",
        (run_id, limit)).fetchall()
    return [Run(row[0], list(row[1]) if row[1] is not None else None, list(row[2]), row[3],
                float(row[4]), float(row[5]) if row[5] is not None else None, row[6]) for row in rows]


_INCOMPLETE_LISTINGS = (
    "SELECT j.job_key, j.job, j.kind, j.project_id, extract(epoch FROM now() - j.done_at)"
    " FROM fullsync_jobs j JOIN poll_pages p"
    " ON p.poll_id = j.poll_id AND p.page = j.page WHERE j.run_id = %s AND p.is_last AND NOT p.complete"
    " AND NOT EXISTS"
    " (SELECT 1 FROM fullsync_jobs c WHERE c.run_id = j.run_id AND c.parent_key = j.job_key)")


def _rerun_incomplete_listings(conn: psycopg.Connection[Any], run_id: str) -> int:
    """A listing whose counts kept disagreeing (a wrong Total, records moving while it paged) gets
    one more poll of the same window, as the child of its last page, as the fetcher's own re-runs
    do; the run's errors then follow that poll instead."""
    rows = conn.execute(_INCOMPLETE_LISTINGS + " ORDER BY j.job_key", (run_id,)).fetchall()
    for key, job_json, _kind, _project, _age_s in rows:
        _record_again(conn, key, PollJob.from_dict(job_json))
    return len(rows)


def _record_again(conn: psycopg.Connection[Any], key: str, last: PollJob) -> PollJob:
    """The same window polled once more from page 1, under a poll id of its own, written to the
    ledger as the child of the listing's last page."""
    rerun = last.rerun + 1
    again = replace(last, poll_id=ledger.poll_id_for(last, last.window_from, rerun), page=1,
                    items_seen=0, expected_total=None, totals_agree=True, rerun=rerun)
    ledger.record(conn, [again], key)
    return again


def run_errors(conn: psycopg.Connection[Any], run_id: str) -> list[str]:
    """Why a run is incomplete, one sentence per refused job or listing that kept disagreeing."""
    return [error.sentence for error in run_error_items(conn, run_id)]


def run_error_items(conn: psycopg.Connection[Any], run_id: str) -> list[RunError]:
    """Why a run is incomplete: refused listings, and polls whose counts kept disagreeing."""
    refused = conn.execute(
        "SELECT kind, project_id, error FROM fullsync_jobs WHERE run_id = %s AND outcome = 'refused'"
        " ORDER BY project_id, kind", (run_id,)).fetchall()
    incomplete = [(kind, project) for _key, _job, kind, project, _age_s
                  in conn.execute(_INCOMPLETE_LISTINGS + " ORDER BY j.project_id, j.kind", (run_id,))]
    disagreeing = "listing incomplete (counts kept disagreeing)"
    return ([RunError(k, p, f"refused ({e})", f"{k} in project {p or '-'} refused ({e})")
             for k, p, e in refused]
            + [RunError(k, p, disagreeing, f"{k} in project {p or '-'}: {disagreeing}")
               for k, p in incomplete])


def run_unavailable_items(conn: psycopg.Connection[Any], run_id: str) -> list[RunError]:
    """What the run found switched off (a project's tool Procore refuses): not errors, the run
    completes without them; one item per job (each date window of a daily log), for aggregation."""
    rows = conn.execute(
        "SELECT kind, project_id, error FROM fullsync_jobs WHERE run_id = %s AND outcome = 'unavailable'"
        " ORDER BY project_id, kind", (run_id,)).fetchall()
    return [RunError(k, p, f"unavailable ({e})", f"{k} in project {p or '-'} unavailable ({e})")
            for k, p, e in rows]


def held_units(conn: psycopg.Connection[Any], live_projects: Sequence[int]) -> set[tuple[str, int | None]]:
    """(kind, project) units a running full sync will fetch and has not settled yet.

    An everyday poll of such a unit would fetch the same data the run is about to fetch (a first
    poll has no cursor, so it lists everything): the scheduler leaves them to the run. A unit the
    run has settled is polled as usual again, from the cursor the run left."""
    held: set[tuple[str, int | None]] = set()
    runs = conn.execute("SELECT run_id, project_ids, phases FROM fullsync_runs WHERE status = 'running'")
    for run_id, scope, phases in runs.fetchall():
        settled = {(kind, project) for kind, project in conn.execute(
            f"SELECT j.kind, j.project_id FROM fullsync_jobs j WHERE j.run_id = %s"
            f" GROUP BY j.kind, j.project_id HAVING count(*) FILTER (WHERE {_UNSETTLED}) = 0",
            (run_id,))}
        projects = [p for p in live_projects if scope is None or p in scope]
        for phase in phases:
            for kind in ledger.PHASES.get(phase, ()):
                units: list[tuple[str, int | None]] = (
                    [(kind, None)] if kind in COMPANY_LEVEL_KINDS else [(kind, p) for p in projects])
                held.update(u for u in units if u not in settled)
    return held


def floor_requests(kind: str, total: int | None, listed: int) -> int:
    """Pages one poll needs at the endpoint's largest page (at least one)."""
    spec = endpoint_for(kind)
    if not spec.paged:
        return 1
    return max(1, math.ceil(max(total or 0, listed) / spec.max_per_page))


def _json(job: PollJob) -> str:
    import dataclasses

    import orjson

    return orjson.dumps(dataclasses.asdict(job)).decode()


def live_keys(client: redis.Redis) -> set[str]:
    """Ledger keys of the jobs and pages some stream still holds for a consumer to handle."""
    found: set[str] = set()
    for stream, group in ((keys.STREAM_SYNC_SCHEDULED, keys.GROUP_FETCHERS),
                          (keys.STREAM_SYNC_PRIORITY, keys.GROUP_FETCHERS),
                          (keys.STREAM_PAGES, keys.GROUP_DIFFERS)):
        for fields in owed_entries(client, stream, group):
            found |= _key_of(fields)
    return found


def _key_of(fields: Any) -> set[str]:
    try:
        message: Message = decode(fields)
    except Exception:  # a foreign or broken entry is not ours to count
        return set()
    if isinstance(message, PollJob) and message.run_id:
        return {ledger.job_key(message)}
    if isinstance(message, PageMessage) and message.run_id:
        return {f"{message.poll_id}:{message.page}"}
    return set()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
