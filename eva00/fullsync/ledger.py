"""The full sync's durable job ledger: every poll job of a run, in PostgreSQL (table fullsync_jobs).

Redis may lose the streams at any moment; a run must still continue where it stopped. So each job
of a run is written here by whoever decides it, in the same transaction: the full-sync command for
the top-level jobs, the fetcher's stage for what a job produces (the next page, drawing areas'
fan-out, daily-log date windows, a re-run): RunLedger, a middleware of that stage, claims a run's
job before the fetcher handles it and marks it done, with the requests it spent, in the
transaction that handles it. A re-run re-enqueues the jobs that are queued here and in no stream,
and the jobs whose page went to the differ but never committed; a job whose page is committed is
never fetched again (its children are forwarded from here instead).

Poll ids of a run are derived from the job's identity (run, kind, project, parent, window, re-run),
so a job handled twice produces the same children, not a second set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
import psycopg
import xxhash

from eva00.messages import Message, PageMessage, PollJob
from eva00.runtime.bus import Delivery, Outgoing
from eva00.runtime.middleware import Middleware

# The seed's four phases: metadata, active data, files, schedules and daily reports.
PHASES: dict[int, tuple[str, ...]] = {
    1: ("project", "vendor", "company_user", "project_user", "spec_section", "spec_section_revision"),
    2: ("submittal", "rfi", "change_event", "change_order_package", "potential_change_order",
        "prime_change_order", "meeting"),
    3: ("drawing_area", "drawing", "drawing_set", "drawing_revision", "image", "image_category",
        "document"),
    4: ("task", "daily_log_header", "manpower_log", "notes_log", "weather_log", "delivery_log"),
}
PHASE_NAMES = {1: "metadata", 2: "active data", 3: "files", 4: "schedules and daily reports"}


def phase_of(kind: str) -> int:
    for phase, kinds in PHASES.items():
        if kind in kinds:
            return phase
    raise ValueError(f"kind {kind!r} is in no full-sync phase")


def job_key(job: PollJob) -> str:
    """A job's identity within its run: one page of one poll, or one planning step."""
    if job.poll_id:
        return f"{job.poll_id}:{job.page}"
    return f"plan:{job.kind}:{job.project_id or 0}:{job.parent_id or 0}:{job.rerun}"


def poll_id_for(job: PollJob, window_from: str | None, rerun: int) -> str:
    """Deterministic within a run, so a job handled twice starts the same poll."""
    identity = f"{job.run_id}|{job.kind}|{job.project_id}|{job.parent_id}|{window_from}|{rerun}"
    return f"fs-{xxhash.xxh64_hexdigest(identity.encode())}"


def _job_json(job: PollJob) -> str:
    return orjson.dumps(dataclasses.asdict(job)).decode()


def record(conn: psycopg.Connection[Any], jobs: Iterable[PollJob], parent_key: str | None) -> None:
    """Write queued jobs (ON CONFLICT DO NOTHING: a second handling changes nothing)."""
    rows = [(job.run_id, job_key(job), parent_key, phase_of(job.kind), job.kind, job.project_id,
             job.poll_id, job.page, _job_json(job)) for job in jobs]
    if rows:
        conn.cursor().executemany(
            "INSERT INTO fullsync_jobs (run_id, job_key, parent_key, phase, kind, project_id, poll_id,"
            " page, job) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
            " ON CONFLICT (run_id, job_key) DO NOTHING", rows)


@dataclasses.dataclass(frozen=True)
class Prior:
    """What the ledger knew of a job before this delivery handled it."""

    done: bool
    outcome: str | None
    page_committed: bool

    @property
    def settled(self) -> bool:
        """Handling it again would only repeat requests whose results are committed."""
        return self.done and (self.outcome != "paged" or self.page_committed)


def claim(conn: psycopg.Connection[Any], job: PollJob) -> Prior:
    """Lock the job's row for this transaction (two fetchers never handle one job at once)."""
    record(conn, [job], None)
    row = conn.execute(
        "SELECT j.state, j.outcome, EXISTS (SELECT 1 FROM poll_pages p WHERE p.poll_id = j.poll_id"
        " AND p.page = j.page AND j.poll_id <> '') FROM fullsync_jobs j"
        " WHERE j.run_id = %s AND j.job_key = %s FOR UPDATE", (job.run_id, job_key(job))).fetchone()
    assert row is not None  # recorded just above
    return Prior(done=row[0] == "done", outcome=row[1], page_committed=bool(row[2]))


def queued_children(conn: psycopg.Connection[Any], job: PollJob) -> list[PollJob]:
    rows = conn.execute("SELECT job FROM fullsync_jobs WHERE run_id = %s AND parent_key = %s"
                        " AND state = 'queued' ORDER BY job_key", (job.run_id, job_key(job)))
    return [PollJob.from_dict(r[0]) for r in rows]


@dataclasses.dataclass
class JobStats:
    """What one handling of a job spent and saw; the fetcher fills it in."""

    requests: int = 0
    shows: int = 0
    shows_needed: int = 0
    listed: int = 0
    total: int | None = None
    refused: str | None = None


def finish(conn: psycopg.Connection[Any], job: PollJob, children: Sequence[PollJob],
           page: tuple[str, int] | None, stats: JobStats) -> None:
    """Mark the job done with what it spent, and write what it produced, in one transaction.
    ``page`` is the (poll id, page) it sent to the differ: a job that started its poll learns
    its poll id only now."""
    key = job_key(job)
    record(conn, children, key)
    outcome = "refused" if stats.refused else "paged" if page else "planned"
    poll_id, number = page or (job.poll_id, job.page)
    conn.execute(
        "UPDATE fullsync_jobs SET state = 'done', outcome = %s, requests = requests + %s,"
        " shows = shows + %s, shows_needed = %s, listed = %s, total = %s, error = %s,"
        " poll_id = %s, page = %s, done_at = now() WHERE run_id = %s AND job_key = %s",
        (outcome, stats.requests, stats.shows, stats.shows_needed, stats.listed, stats.total,
         stats.refused, poll_id, number, job.run_id, key))


def skip(conn: psycopg.Connection[Any], job: PollJob) -> None:
    """A settled job delivered again: nothing fetched; noted so duplicates are visible."""
    conn.execute("UPDATE fullsync_jobs SET done_at = now() WHERE run_id = %s AND job_key = %s",
                 (job.run_id, job_key(job)))


UNREADABLE_PREFIX = "unreadable answer"  # how UnexpectedShape's message (and so the job's error) starts


def unreadable_error(conn: psycopg.Connection[Any], job: PollJob) -> str | None:
    """The error of a job of the same run, kind and project that failed on an unreadable answer."""
    row = conn.execute(
        "SELECT error FROM fullsync_jobs WHERE run_id = %s AND kind = %s"
        " AND coalesce(project_id, 0) = coalesce(%s, 0) AND outcome = 'refused' AND error LIKE %s LIMIT 1",
        (job.run_id, job.kind, job.project_id, UNREADABLE_PREFIX + "%")).fetchone()
    return str(row[0]) if row else None


class RunLedger(Middleware):
    """The ledger around a run's job in the fetcher's stage: claimed (row locked) before the
    handler, so two fetchers never handle one job at once; a job whose result is already
    committed (settled) is not handled again: its queued children are forwarded from the ledger
    instead; otherwise marked done, with its children and page, in the handler's transaction.
    ``spent`` tells what the handler spent on the job in hand."""

    def __init__(self, spent: Callable[[], JobStats]) -> None:
        self.spent = spent

    def before_handle(self, conn: psycopg.Connection, message: Message,
                      delivery: Delivery) -> Sequence[Outgoing] | None:
        if not isinstance(message, PollJob) or not message.run_id:
            return None
        if not claim(conn, message).settled:
            unreadable = unreadable_error(conn, message)
            if unreadable is None:
                return None
            # The (project, kind) already failed this run on an answer the client cannot read:
            # asking again would only repeat it (a later run asks again).
            finish(conn, message, [], None, JobStats(refused=unreadable))
            return []
        skip(conn, message)
        return [(delivery.stream, child) for child in queued_children(conn, message)]

    def after_handle(self, conn: psycopg.Connection, message: Message, delivery: Delivery,
                     outgoing: Sequence[Outgoing]) -> None:
        if not isinstance(message, PollJob) or not message.run_id:
            return
        children = [m for s, m in outgoing if isinstance(m, PollJob) and s == delivery.stream
                    and m.run_id == message.run_id]
        pages = [(m.poll_id, m.page) for _s, m in outgoing if isinstance(m, PageMessage)]
        finish(conn, message, children, pages[0] if pages else None, self.spent())
