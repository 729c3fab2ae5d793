"""The scheduler enqueues one poll job per project and kind, never doubles a pending one, and
notices new projects."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import psycopg
import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.kinds import FAMILY_KINDS
from eva00.messages import PollJob, PollMode, decode
from eva00.stages.scheduler import Scheduler


def _add_project(database_url: str, procore_id: int, deleted: bool = False) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO projects (kind, procore_id, project_id, payload, payload_hash, fetched_at,"
            " source, is_deleted) VALUES ('project', %s, NULL, %s, 'h', now(), 'api', %s)",
            (procore_id, orjson.dumps({"id": procore_id}).decode(), deleted))


def _jobs(client: redis.Redis) -> list[PollJob]:
    entries = client.xrange(keys.STREAM_SYNC_SCHEDULED)
    return [job for _id, fields in entries if isinstance(job := decode(fields), PollJob)]


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    with ConnectionPool(settings.effective_database_url, min_size=1, max_size=2) as opened:
        yield opened


def _scheduler(settings: Settings, client: redis.Redis, pool: ConnectionPool) -> Scheduler:
    return Scheduler(settings, client, pool, clock=lambda: 1_000.0)


def test_a_family_tick_enqueues_one_job_per_live_project_and_kind(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    _add_project(database_url, 11)
    _add_project(database_url, 12)
    _add_project(database_url, 13, deleted=True)
    scheduler = _scheduler(settings, redis_client, pool)
    assert scheduler.tick_family("change_orders") == 2 * len(FAMILY_KINDS["change_orders"])
    jobs = _jobs(redis_client)
    assert {(j.kind, j.project_id) for j in jobs} == {
        (kind, p) for kind in FAMILY_KINDS["change_orders"] for p in (11, 12)}
    assert all(j.mode == PollMode.INCREMENTAL and j.budget == "scheduled" for j in jobs)
    assert all(j.requested_at == 1_000.0 for j in jobs)


def test_a_job_still_pending_is_not_enqueued_again(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    _add_project(database_url, 11)
    scheduler = _scheduler(settings, redis_client, pool)
    assert scheduler.tick_family("rfis") == 1
    assert scheduler.tick_family("rfis") == 0
    redis_client.delete(keys.job_pending_key("rfi:incremental", 11))
    assert scheduler.tick_family("rfis") == 1
    assert len(_jobs(redis_client)) == 2


def test_company_level_kinds_are_polled_once_without_a_project(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    _add_project(database_url, 11)
    _add_project(database_url, 12)
    scheduler = _scheduler(settings, redis_client, pool)
    scheduler.tick_family("projects")
    scheduler.tick_family("contacts")
    pairs = sorted((j.kind, j.project_id or 0) for j in _jobs(redis_client))
    assert pairs == [("company_user", 0), ("project", 0), ("project_user", 11), ("project_user", 12)]


def test_new_projects_are_polled_in_every_family_at_once(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    scheduler = _scheduler(settings, redis_client, pool)
    assert scheduler.watch_projects() == 0
    _add_project(database_url, 21)
    added = scheduler.watch_projects()
    project_kinds = {k for kinds in FAMILY_KINDS.values() for k in kinds} - {
        "project", "vendor", "company_user"}
    assert added == len(project_kinds)
    assert {j.kind for j in _jobs(redis_client)} == project_kinds
    assert scheduler.watch_projects() == 0


def test_reconciliation_jobs_cover_every_kind(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    _add_project(database_url, 11)
    scheduler = _scheduler(settings, redis_client, pool)
    scheduler.tick_reconcile()
    jobs = _jobs(redis_client)
    assert {j.mode for j in jobs} == {PollMode.RECONCILE}
    assert {j.kind for j in jobs} == {k for kinds in FAMILY_KINDS.values() for k in kinds}


def test_a_wiped_redis_only_causes_jobs_to_be_enqueued_again(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    _add_project(database_url, 11)
    scheduler = _scheduler(settings, redis_client, pool)
    scheduler.tick_family("rfis")
    redis_client.flushall()
    assert scheduler.tick_family("rfis") == 1


def test_housekeeping_archives_old_sync_log_rows_and_prunes_reconciliations_and_webhook_events(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO sync_log (at, kind, direction, action, result) VALUES"
                     " (now() - interval '200 days', 'rfi', 'in', 'insert', 'ok'),"
                     " (now(), 'rfi', 'in', 'insert', 'ok')")
        conn.execute("INSERT INTO poll_pages (poll_id, page, kind, project_id, mode, is_last, pages_total,"
                     " complete, finished_at) VALUES ('old', 1, 'rfi', 1, 'reconcile', true, 1, true,"
                     " now() - interval '2 days'), ('new', 1, 'rfi', 1, 'reconcile', true, 1, true, now())")
        conn.execute("INSERT INTO reconcile_seen VALUES ('old', 1), ('old', 2), ('new', 3)")
        conn.execute("INSERT INTO webhook_events (event_key, received_at, status) VALUES"
                     " ('old', now() - interval '200 days', 'processed'), ('new', now(), 'processed')")
    assert _scheduler(settings, redis_client, pool).housekeeping() == 1
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM sync_log").fetchone() == (1,)
        assert conn.execute("SELECT poll_id FROM reconcile_seen").fetchall() == [("new",)]
        assert conn.execute("SELECT event_key FROM webhook_events").fetchall() == [("new",)]
    assert list((settings.data_dir / "archive").glob("sync_log-*.jsonl.gz"))


def test_a_running_full_sync_holds_everyday_polls_of_what_it_has_not_settled_yet(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    from eva00.fullsync.run import FullSync

    _add_project(database_url, 11)
    _add_project(database_url, 12)
    run = FullSync(settings, redis_client, pool).start([11], [2])
    scheduler = _scheduler(settings, redis_client, pool)
    scheduler.tick_family("rfis")
    assert {(j.kind, j.project_id) for j in _jobs(redis_client)} == {("rfi", 12)}, \
        "project 11's rfis are the run's to fetch; project 12 is outside its scope"
    with psycopg.connect(database_url) as conn:
        # The run's rfi poll of project 11 is done and its only page committed.
        conn.execute("INSERT INTO fullsync_jobs (run_id, job_key, phase, kind, project_id, poll_id, page,"
                     " job, state, outcome) VALUES (%s, 'plan:rfi:11:0:0', 2, 'rfi', 11, 'p1', 1, '{}',"
                     " 'done', 'paged')", (run.run_id,))
        conn.execute("INSERT INTO poll_pages (poll_id, page, kind, project_id, mode, items, is_last)"
                     " VALUES ('p1', 1, 'rfi', 11, 'full', 0, true)")
    scheduler.tick_family("rfis")
    assert ("rfi", 11) in {(j.kind, j.project_id) for j in _jobs(redis_client)}
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE fullsync_runs SET status = 'complete' WHERE run_id = %s", (run.run_id,))
    redis_client.delete(keys.job_pending_key("rfi:incremental", 11))
    assert scheduler.tick_family("rfis") == 1
