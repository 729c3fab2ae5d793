"""The adaptive schedule against real PostgreSQL and Redis: the budget caps what each tick
enqueues, a change keeps a pair at its family's interval, quiet polls stretch it, a change in a
quiet project wakes all its kinds, inactive projects wait the maximum staleness, a full sync's
initial load is no sign of activity, and one alert says when the budget cannot keep up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.kinds import COMPANY_LEVEL_KINDS, FAMILY_KINDS
from eva00.messages import PollJob, decode
from eva00.stages.scheduler import BUDGET_ALERT, Scheduler

ALL_KINDS = [kind for kinds in FAMILY_KINDS.values() for kind in kinds]
PROJECT_KINDS = [k for k in ALL_KINDS if k not in COMPANY_LEVEL_KINDS]


class Clock:
    def __init__(self) -> None:
        self.now_s = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    with ConnectionPool(settings.effective_database_url, min_size=1, max_size=2) as opened:
        yield opened


def _add_project(database_url: str, procore_id: int, active: bool = True) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO projects (kind, procore_id, project_id, payload, payload_hash, fetched_at,"
            " source) VALUES ('project', %s, NULL, %s, 'h', now(), 'api')",
            (procore_id, orjson.dumps({"id": procore_id, "active": active}).decode()))


def _jobs(client: redis.Redis) -> list[PollJob]:
    return [job for _id, fields in client.xrange(keys.STREAM_SYNC_SCHEDULED)
            if isinstance(job := decode(fields), PollJob)]


def _finish_poll(database_url: str, kind: str, project_id: int | None, *, changed: int,
                 run_id: str = "", at: datetime | None = None) -> None:
    """What the differ commits when a poll ends: its last page, complete, with its change count."""
    poll_id = f"{kind}:{project_id}:{datetime.now(UTC).timestamp()}"
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO poll_pages (poll_id, page, kind, project_id, mode, is_last, pages_total,"
            " complete, run_id, items, changed, finished_at) VALUES (%s, 1, %s, %s, 'incremental', true,"
            " 1, true, %s, %s, %s, %s)",
            (poll_id, kind, project_id, run_id, changed, changed, at or datetime.now(UTC)))


def _plan(database_url: str, kind: str, project_id: int) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        cur = conn.execute("SELECT interval_s, next_poll_at, quiet_polls, last_change_at FROM poll_plans"
                           " WHERE kind = %s AND project_id = %s", (kind, project_id))
        row = cur.fetchone()
        assert row is not None
        return dict(zip(("interval_s", "next_poll_at", "quiet_polls", "last_change_at"), row, strict=True))


def _scheduler(settings: Settings, client: redis.Redis, pool: ConnectionPool, clock: Clock,
               **changes: Any) -> Scheduler:
    return Scheduler(settings.replace(**changes), client, pool, clock=clock)


def test_each_tick_enqueues_no_more_due_pairs_than_the_scheduled_budget_accrued(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    for project_id in (11, 12, 13):
        _add_project(database_url, project_id)
    clock = Clock()
    scheduler = _scheduler(settings, redis_client, pool, clock, budget_scheduled_per_min=60, plan_tick_s=5.0)
    assert scheduler.tick_plan() == 5  # one tick's share of 60 a minute
    clock.now_s += 60
    assert scheduler.tick_plan() == 60  # at most a minute's worth, however long the pause
    clock.now_s += 60
    pairs = 3 * len(PROJECT_KINDS) + len(COMPANY_LEVEL_KINDS)
    assert scheduler.tick_plan() == pairs - 65  # the rest; nothing enqueued twice
    jobs = _jobs(redis_client)
    assert len({(j.kind, j.project_id) for j in jobs}) == len(jobs) == pairs
    clock.now_s += 60
    assert scheduler.tick_plan() == 0  # planned: not due again before their interval


def test_a_pair_that_changes_stays_at_its_familys_interval_and_a_quiet_one_backs_off(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    _add_project(database_url, 11)
    clock = Clock()
    scheduler = _scheduler(settings, redis_client, pool, clock)
    scheduler.tick_plan()
    seed_s = settings.poll_intervals_s["rfis"]
    _finish_poll(database_url, "rfi", 11, changed=2)
    scheduler.tick_plan()
    assert _plan(database_url, "rfi", 11)["interval_s"] == seed_s
    # a quiet kind of a project that is active waits longer, up to a few intervals
    submittal_seed_s = settings.poll_intervals_s["submittals"]
    intervals = []
    for _ in range(6):
        _finish_poll(database_url, "submittal", 11, changed=0)
        _finish_poll(database_url, "rfi", 11, changed=0)
        scheduler.tick_plan()
        intervals.append(_plan(database_url, "submittal", 11)["interval_s"] // submittal_seed_s)
    assert intervals == [2, 4, 8, 8, 8, 8]
    assert _plan(database_url, "rfi", 11)["interval_s"] == seed_s  # changed within the active window


def test_a_change_in_a_quiet_project_wakes_every_kind_within_its_familys_interval(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    _add_project(database_url, 21)
    clock = Clock()
    scheduler = _scheduler(settings, redis_client, pool, clock, max_staleness_s=86400.0)
    scheduler.tick_plan()
    for _ in range(10):  # quiet for long: every kind backs off towards a day
        for kind in ("rfi", "document"):
            _finish_poll(database_url, kind, 21, changed=0)
        scheduler.tick_plan()
    assert _plan(database_url, "document", 21)["interval_s"] >= 3600
    _finish_poll(database_url, "rfi", 21, changed=1)  # e.g. the item fetch of a webhook
    scheduler.tick_plan()
    now = datetime.fromtimestamp(clock(), UTC)
    document = _plan(database_url, "document", 21)
    assert document["next_poll_at"] <= now + timedelta(seconds=settings.poll_intervals_s["documents"] + 1)
    assert _plan(database_url, "rfi", 21)["interval_s"] == settings.poll_intervals_s["rfis"]


def test_an_inactive_project_waits_the_maximum_staleness_and_a_full_sync_makes_nothing_active(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    _add_project(database_url, 31, active=False)
    _add_project(database_url, 32)
    clock = Clock()
    scheduler = _scheduler(settings, redis_client, pool, clock, max_staleness_s=7200.0)
    scheduler.tick_plan()
    _finish_poll(database_url, "rfi", 31, changed=3)
    _finish_poll(database_url, "rfi", 32, changed=40, run_id="fs-1")  # a full sync's initial load
    scheduler.tick_plan()
    assert _plan(database_url, "rfi", 31)["interval_s"] == 7200
    full = _plan(database_url, "rfi", 32)
    assert full["last_change_at"] is None and full["quiet_polls"] == 0


def test_one_alert_when_the_budget_cannot_poll_the_active_pairs_at_their_intervals(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    for project_id in range(41, 46):
        _add_project(database_url, project_id)
    clock = Clock()
    tight = _scheduler(settings, redis_client, pool, clock, budget_scheduled_per_min=5)
    tight.tick_plan()  # every new pair is planned at its family's interval
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT status, message FROM alerts WHERE alert_key = %s",
                            (BUDGET_ALERT,)).fetchall()
    assert len(rows) == 1 and rows[0][0] == "open" and "scheduled budget of 5" in rows[0][1]
    roomy = _scheduler(settings, redis_client, pool, clock, budget_scheduled_per_min=6000)
    assert roomy.check_budget(list(range(41, 46)))
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status FROM alerts WHERE alert_key = %s",
                            (BUDGET_ALERT,)).fetchone() == ("resolved",)


def test_a_restarted_scheduler_polls_only_projects_its_plan_does_not_hold_yet(
        settings: Settings, database_url: str, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    _add_project(database_url, 51)
    clock = Clock()
    first = _scheduler(settings, redis_client, pool, clock)
    assert first.watch_projects() == len(PROJECT_KINDS)
    first.tick_plan()
    redis_client.flushdb()  # the restart lost the pending markers too
    _add_project(database_url, 52)
    restarted = _scheduler(settings, redis_client, pool, clock)
    assert restarted.watch_projects() == len(PROJECT_KINDS)  # project 52's kinds only
    assert {j.project_id for j in _jobs(redis_client)} == {52}
