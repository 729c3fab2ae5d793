"""Tools switched off per project (issue 16, finding 7), against the simulator with real
PostgreSQL and Redis: the first refusal marks the (project, kind) unavailable, nothing asks for it
again until its recheck (not another date window, not another run the same day), a recheck that is
answered makes it available and polled as usual, and a full sync whose only gaps are such tools
ends complete with one line per (kind, reason)."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, cast

import psycopg
import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.fullsync.run import FullSync, Run
from eva00.fullsync.status import run_status
from eva00.kinds import FAMILY_KINDS
from eva00.messages import BudgetClass, PollJob, PollMode
from eva00.procore.errors import error_detail
from eva00.proof.checker.run import hidden_by_tools, record_figures
from eva00.proof.pipeline_local import LocalPipeline, settings_for_simulator
from eva00.replica import unavailable
from eva00.simulator.testing import SimHandle
from eva00.stages.fetcher import Fetcher

ALL_PHASES = [1, 2, 3, 4]
DAILY_LOG_KINDS = {"daily_log_header", "manpower_log", "notes_log", "weather_log", "delivery_log"}
DAILY_LOG_REASON = "403: The Daily Log tool is not enabled for this project"


@pytest.fixture
def pipeline_for(settings: Settings, redis_client: redis.Redis) -> Iterator[Callable[..., LocalPipeline]]:
    pools: list[ConnectionPool] = []

    def make(sim: SimHandle, recheck_s: float = 86400.0) -> LocalPipeline:
        configured = settings_for_simulator(
            settings, api_base=sim.api_base, login_base=sim.login_base, client_id=sim.client_id,
            client_secret=sim.client_secret, company_id=sim.company_id).replace(
            unavailable_recheck_s=recheck_s)
        pool = ConnectionPool(configured.effective_database_url, min_size=1, max_size=4, open=True)
        pools.append(pool)
        return LocalPipeline.build(configured, redis_client, pool)

    yield make
    for pool in pools:
        pool.close()


def full_sync(pipeline: LocalPipeline, client: redis.Redis, *, new: bool = False) -> tuple[FullSync, Run]:
    sync = FullSync(pipeline.settings, client, pipeline.pool)
    run = sync.start(None, ALL_PHASES, new=new)
    for _ in range(20_000):
        run = sync.step(run)
        if run.status != "running":
            return sync, run
        pipeline.fetcher.step()
        pipeline.differ.step()
    raise AssertionError("the full sync never finished")


def refusals(sim: SimHandle, since_seq: int = 0) -> Counter[tuple[int, str]]:
    """Refused API requests per (project, endpoint) since a ledger position."""
    found: Counter[tuple[int, str]] = Counter()
    for entry in sim.ledger(since_seq):
        if entry["host"] == "api" and entry["status"] in (403, 404) and "/_sim" not in entry["path"]:
            match = re.search(r"/projects/(\d+)/([a-z_]+)", entry["path"])
            assert match, entry
            found[(int(match.group(1)), match.group(2))] += 1
    return found


def last_seq(sim: SimHandle) -> int:
    return max((e["seq"] for e in sim.ledger()), default=0)


def projects_of(sim: SimHandle) -> list[int]:
    return sorted(p["id"] for p in sim.truth(kinds=["project"])["records"])


def unavailable_pairs(database_url: str) -> set[tuple[str, int]]:
    with psycopg.connect(database_url) as conn:
        return {(u.kind, u.project_id) for u in unavailable.listing(conn)}


def test_a_full_sync_with_two_tools_switched_off_ends_complete_with_one_line_per_kind_and_reason(
        sim_factory: Callable[..., SimHandle], pipeline_for: Callable[..., LocalPipeline],
        redis_client: redis.Redis, database_url: str) -> None:
    sim = sim_factory(projects=3, tools_off="daily_logs@10%,meetings@10%")
    off = sim.tools_off()
    (logs_off,), (meetings_off,) = off["daily_logs"], off["meetings"]
    sync, run = full_sync(pipeline_for(sim), redis_client)
    assert (run.status, run.reason) == ("complete", None)
    status = run_status(sync, run)
    assert status["reasons"] == [] and status["errors"] == 0
    groups = {(g["kind"], g["reason"]): (g["projects"], g["examples"]) for g in status["unavailable"]}
    assert groups == {
        **{(kind, f"unavailable ({DAILY_LOG_REASON})"): (1, [logs_off]) for kind in DAILY_LOG_KINDS},
        ("meeting", "unavailable (403: The Meetings tool is not enabled for this project)"):
            (1, [meetings_off])}
    # One refused request per (project, kind), not one per date window.
    refused = refusals(sim)
    assert set(refused.values()) == {1}
    assert {p for p, _e in refused} == {logs_off, meetings_off} and len(refused) == 6
    assert unavailable_pairs(database_url) == {(k, logs_off) for k in DAILY_LOG_KINDS} | {
        ("meeting", meetings_off)}
    # Everything else is in the replica; only the switched-off kinds of those projects are not.
    from eva00.proof.bench.full_sync import live_hashes

    truth, replica = live_hashes(sim, database_url)
    missing = {(kind, project) for kind, _id, project in set(truth) - set(replica)}
    assert missing and missing <= {(k, logs_off) for k in DAILY_LOG_KINDS} | {("meeting", meetings_off)}
    assert all(truth[key] == replica[key] for key in set(truth) & set(replica))
    hidden = hidden_by_tools(off)  # what `eva00 check` leaves out: Procore shows none of it
    with psycopg.connect(database_url) as conn:
        figures = record_figures(conn, [r for r in sim.truth()["records"]
                                        if (r["kind"], r["project_id"]) not in hidden])
    assert {name: figures[name][0] for name in ("missing_records", "unexpected_records", "stale_records")} \
        == {"missing_records": 0, "unexpected_records": 0, "stale_records": 0}
    assert status["requests_over_floor"] is not None and status["requests_over_floor"] <= 1.10


def test_no_second_request_is_sent_the_same_day_by_a_new_run_or_the_scheduler(
        sim_factory: Callable[..., SimHandle], pipeline_for: Callable[..., LocalPipeline],
        redis_client: redis.Redis, database_url: str) -> None:
    sim = sim_factory(projects=2, tools_off="daily_logs@50%")
    pipeline = pipeline_for(sim)
    full_sync(pipeline, redis_client)
    seq = last_seq(sim)
    sync, run = full_sync(pipeline, redis_client, new=True)
    assert run.status == "complete"
    assert [g["projects"] for g in run_status(sync, run)["unavailable"]] == [1] * len(DAILY_LOG_KINDS)
    pipeline.poll_cycle()
    assert pipeline.scheduler.tick_reconcile() > 0
    pipeline.drain()
    assert refusals(sim, seq) == Counter()


class Clock:
    """The host's time, moved on by ``shift_s``: a day passes without waiting for it."""

    def __init__(self) -> None:
        self.shift_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift_s


def test_a_tool_switched_back_on_is_asked_again_after_the_recheck_interval_and_polled_as_usual(
        sim_factory: Callable[..., SimHandle], pipeline_for: Callable[..., LocalPipeline],
        redis_client: redis.Redis, database_url: str) -> None:
    sim = sim_factory(projects=2, tools_off="rfis@50%")
    (project,) = sim.tools_off()["rfis"]
    recheck_s = 3600.0
    pipeline = pipeline_for(sim, recheck_s=recheck_s)
    clock = Clock()
    pipeline.scheduler.clock = pipeline.fetcher.handler.clock = clock  # type: ignore[attr-defined]
    pipeline.sync_everything()
    assert unavailable_pairs(database_url) == {("rfi", project)}
    seq = last_seq(sim)
    clock.shift_s = recheck_s - 60  # within the interval: the scheduler leaves the pair out
    pipeline.poll_cycle()
    assert not any(f"/projects/{project}/rfis" in e["path"] for e in sim.ledger(seq))
    clock.shift_s = recheck_s + 60  # due: asked once, still refused, another interval
    pipeline.poll_cycle()
    pipeline.poll_cycle()
    assert refusals(sim, seq) == Counter({(project, "rfis"): 1})
    with psycopg.connect(database_url) as conn:
        (row,) = [u for u in unavailable.listing(conn) if u.kind == "rfi"]
    assert row.refusals == 2 and row.first_refused_at is not None
    assert row.last_checked_at > row.first_refused_at
    sim.switch_tool(project, "rfis", on=True)
    clock.shift_s = 2 * recheck_s + 120
    pipeline.poll_cycle()
    assert unavailable_pairs(database_url) == set()
    with psycopg.connect(database_url) as conn:
        rfis = conn.execute("SELECT count(*) FROM rfis WHERE project_id = %s AND NOT is_deleted",
                            (project,)).fetchone()
    truth = [r for r in sim.truth(kinds=["rfi"], project_id=project)["records"] if not r["is_deleted"]]
    assert rfis == (len(truth),) and len(truth) > 0
    seq = last_seq(sim)
    pipeline.poll_cycle()  # available again: polled every interval like any other
    assert any(f"/projects/{project}/rfis" in e["path"] for e in sim.ledger(seq))


def test_a_tool_refused_with_404_is_unavailable_too(
        sim_factory: Callable[..., SimHandle], pipeline_for: Callable[..., LocalPipeline],
        redis_client: redis.Redis, database_url: str) -> None:
    sim = sim_factory(projects=2, tools_off="photos@50%", tools_off_status=404)
    (project,) = sim.tools_off()["photos"]
    sync, run = full_sync(pipeline_for(sim), redis_client)
    assert (run.status, run.reason) == ("complete", None)
    assert unavailable_pairs(database_url) == {("image", project), ("image_category", project)}
    assert {g["reason"] for g in run_status(sync, run)["unavailable"]} == {
        "unavailable (404: The Photos tool is not enabled for this project)"}


def test_a_forbidden_project_is_not_taken_for_a_tool_switched_off(
        sim: SimHandle, pipeline_for: Callable[..., LocalPipeline], database_url: str) -> None:
    pipeline = pipeline_for(sim)
    pipeline.sync_everything()
    project = projects_of(sim)[0]
    sim.forbid_project(project)
    for kind in FAMILY_KINDS["rfis"]:
        pipeline.scheduler.enqueue(pipeline.scheduler.jobs_for([kind], [project], PollMode.INCREMENTAL,
                                                               "test"), ttl_s=60)
    pipeline.drain()
    assert unavailable_pairs(database_url) == set()
    with psycopg.connect(database_url) as conn:
        alert = conn.execute("SELECT 1 FROM alerts WHERE alert_key = %s", (f"project-forbidden:{project}",))
        assert alert.fetchone() is not None


@pytest.mark.parametrize(("body", "detail"), [
    (b'{"errors": "The RFIs tool is not enabled"}', "The RFIs tool is not enabled"),
    (b'{"errors": ["a", "b"]}', "a; b"),
    (b'{"message": "nope\\u0000\\n"}', "nope"),
    (b"<html>not json</html>", ""),
    (b"", ""),
    (b'["a list"]', ""),
])
def test_procores_error_sentence_is_read_from_any_body_without_failing(body: bytes, detail: str) -> None:
    assert error_detail(body) == detail


@contextmanager
def _reads(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        yield conn


def test_fetchers_asking_for_a_pair_at_once_send_one_request_and_follow_its_outcome(
        settings: Settings, database_url: str, redis_client: redis.Redis) -> None:
    now = [time.time()]
    job = PollJob(kind="notes_log", project_id=7, mode=PollMode.INCREMENTAL, budget=BudgetClass.SCHEDULED,
                  reason="test", requested_at=now[0], window_from="2026-11-01", window_to="2026-11-30")
    first, second = (Fetcher(settings, cast(Any, None), redis_client, clock=lambda: now[0])
                     for _ in range(2))
    reads = partial(_reads, database_url)
    assert first._tool_gate(reads, job) == unavailable.Gate(None, record=True)
    found: list[unavailable.Gate | None] = []
    thread = threading.Thread(target=lambda: found.append(second._tool_gate(reads, job)))
    thread.start()
    time.sleep(0.5)
    assert found == []  # waits for the first fetcher's answer instead of asking too
    with psycopg.connect(database_url) as conn:
        unavailable.record_refusal(conn, "notes_log", 7, DAILY_LOG_REASON, 403, now[0], 60.0)
    thread.join(10)
    assert found == [unavailable.Gate(DAILY_LOG_REASON, record=False)]
    # The recheck is due: one claims it, the other keeps the refusal until that answer is in.
    now[0] += 61
    assert first._tool_gate(reads, job) == unavailable.Gate(None, record=True)
    assert second._tool_gate(reads, job) == unavailable.Gate(DAILY_LOG_REASON, record=False)
    with psycopg.connect(database_url) as conn:
        assert unavailable.mark_available(conn, "notes_log", 7, now[0])
    assert second._tool_gate(reads, job) == unavailable.Gate(None, record=False)
    with psycopg.connect(database_url) as conn:
        assert unavailable.listing(conn) == []
