"""The full sync against the simulator, stages stepped in-process: equals the ground truth,
resumes from PostgreSQL after Redis is wiped without re-fetching committed pages, and fails a
forbidden project alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import redis

from eva00.fullsync.run import FullSync, Run
from eva00.fullsync.status import run_status
from eva00.proof.pipeline_local import LocalPipeline
from eva00.simulator.testing import SimHandle

ALL_PHASES = [1, 2, 3, 4]


class Harness:
    def __init__(self, pipeline: LocalPipeline, sync: FullSync) -> None:
        self.pipeline, self.sync = pipeline, sync

    def run(self, run: Run, max_rounds: int = 20_000, stop_after: int | None = None,
            until_phase: int | None = None) -> Run:
        """Step the watcher and both stages until the run ends (or ``stop_after`` messages, or
        the run reaches ``until_phase``)."""
        handled = 0
        for _ in range(max_rounds):
            run = self.sync.step(run)
            if run.status != "running" or (until_phase and self.phase_started(run, until_phase)):
                return run
            done = self.pipeline.fetcher.step() + self.pipeline.differ.step()
            handled += done
            if stop_after is not None and handled >= stop_after:
                return run
        raise AssertionError("the full sync never finished")

    def phase_started(self, run: Run, phase: int) -> bool:
        with self.sync.pool.connection() as conn:
            return conn.execute("SELECT 1 FROM fullsync_jobs WHERE run_id = %s AND phase = %s LIMIT 1",
                                (run.run_id, phase)).fetchone() is not None


@pytest.fixture
def harness(redis_client: redis.Redis,
            make_pipeline: Callable[[SimHandle], LocalPipeline]) -> Callable[[SimHandle], Harness]:
    def make(sim: SimHandle) -> Harness:
        pipeline = make_pipeline(sim)
        return Harness(pipeline, FullSync(pipeline.settings, redis_client, pipeline.pool))

    return make


def _differences(sim: SimHandle, database_url: str) -> dict[str, list[Any]]:
    from eva00.proof.bench.full_sync import live_hashes

    truth, replica = live_hashes(sim, database_url)
    return {"missing": sorted(set(truth) - set(replica))[:10],
            "unexpected": sorted(set(replica) - set(truth))[:10],
            "stale": sorted(k for k in set(truth) & set(replica) if truth[k] != replica[k])[:10]}


def _api_calls(sim: SimHandle) -> list[str]:
    return [f"{e['path']}?{e.get('query', '')}" for e in sim.ledger()
            if e["host"] == "api" and "oauth" not in e["path"] and "/_sim" not in e["path"]]


def test_a_full_sync_equals_the_simulators_ground_truth_and_reports_its_floor(
        sim: SimHandle, harness: Callable[[SimHandle], Harness], database_url: str) -> None:
    h = harness(sim)
    run = h.run(h.sync.start(None, ALL_PHASES))
    assert (run.status, run.reason) == ("complete", None)
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
    status = run_status(h.sync, run)
    calls = _api_calls(sim)
    assert status["requests"] == len(calls)
    assert status["floor"] <= status["requests"] <= status["floor"] * 1.10
    assert {k["kind"] for k in status["kinds"] if k["items"]} >= {"project", "rfi", "drawing", "task"}
    with psycopg.connect(database_url) as conn:
        cursors = conn.execute("SELECT count(*) FROM sync_cursors WHERE kind = 'rfi'").fetchone()
    assert cursors == (3,), "a full sync leaves the rfi cursors where everyday polling continues"


def test_redis_wiped_mid_run_resumes_without_refetching_committed_pages(
        sim: SimHandle, harness: Callable[[SimHandle], Harness], database_url: str,
        redis_client: redis.Redis) -> None:
    h = harness(sim)
    run = h.run(h.sync.start(None, ALL_PHASES), stop_after=100)  # mid phase 3, not at a phase boundary
    assert run.status == "running"
    redis_client.flushall()
    h2 = harness(sim)
    run = h2.sync.start(None, ALL_PHASES)
    assert h2.sync.heal(run) > 0
    run = h2.run(run)
    assert run.status == "complete"
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
    repeated = [call for call, n in Counter(_api_calls(sim)).items() if n > 1]
    assert len(repeated) <= 2, f"fetched twice: {repeated}"


def test_a_forbidden_project_fails_alone_the_others_finish_and_its_reasons_are_one_line_per_kind(
        sim: SimHandle, harness: Callable[[SimHandle], Harness], database_url: str) -> None:
    forbidden = min(p["id"] for p in sim.truth(kinds=["project"])["records"])
    h = harness(sim)
    run = h.run(h.sync.start(None, ALL_PHASES), until_phase=2)
    sim.forbid_project(forbidden)  # known from phase 1, refused from phase 2 on
    run = h.run(run)
    assert run.status == "incomplete"
    assert run.reason is not None and f"project {forbidden} refused (403" in run.reason
    others = _differences(sim, database_url)
    assert others["unexpected"] == [] and others["stale"] == []
    assert others["missing"] and {key[2] for key in others["missing"]} == {forbidden}
    status = run_status(h.sync, run)
    assert status["errors"] > 0
    # Every refused date window of the daily logs is one raw error; printed, it is one line per kind.
    kinds = {(r["kind"], r["reason"]) for r in status["reasons"]}
    assert len(kinds) == len(status["reasons"]) < len(status["error_list"])
    assert all((r["projects"], r["examples"]) == (1, [forbidden]) for r in status["reasons"])
    assert sum(r["jobs"] for r in status["reasons"]) == len(status["error_list"])


def test_a_listing_whose_counts_kept_disagreeing_is_polled_again_when_the_run_is_reopened(
        sim: SimHandle, harness: Callable[[SimHandle], Harness], database_url: str) -> None:
    h = harness(sim)
    run = h.run(h.sync.start(None, ALL_PHASES), until_phase=2)
    # every RFI listing lies about its Total, through all of the fetcher's own re-runs
    sim.set_faults("wrong_total", ratio=1.0, paths="/rest/v1.0/projects/[0-9]+/rfis")
    run = h.run(run)
    assert run.status == "incomplete"
    assert run.reason is not None and "rfi in project" in run.reason
    assert "counts kept disagreeing" in run.reason
    sim.clear_faults()
    reopened = h.sync.start(None, ALL_PHASES)
    assert (reopened.run_id, reopened.status) == (run.run_id, "running")
    h.sync.heal(reopened)  # what `eva00 full-sync` does: the new polls are queued from PostgreSQL
    seq = max(e["seq"] for e in sim.ledger())
    run = h.run(reopened)
    assert (run.status, run.reason) == ("complete", None)
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
    again = {e["path"] for e in sim.ledger(since_seq=seq) if e["host"] == "api" and "oauth" not in e["path"]}
    assert again and all("/rfis" in path for path in again), again


def test_a_burst_of_wrong_totals_outlasting_the_fetchers_re_runs_is_waited_out_and_the_run_completes(
        sim: SimHandle, harness: Callable[[SimHandle], Harness], database_url: str) -> None:
    import time

    from eva00.fullsync.run import _INCOMPLETE_LISTINGS

    h = harness(sim)
    run = h.run(h.sync.start(None, ALL_PHASES), until_phase=2)
    sim.set_faults("wrong_total", ratio=1.0, paths="/rest/v1.0/projects/[0-9]+/rfis")
    waited_at = None
    deadline = time.monotonic() + 120
    while run.status == "running" and time.monotonic() < deadline:
        run = h.sync.step(run)
        h.pipeline.fetcher.step() + h.pipeline.differ.step()
        with h.sync.pool.connection() as conn:
            lying = conn.execute(_INCOMPLETE_LISTINGS, (run.run_id,)).fetchall()
        if waited_at is None and lying:
            waited_at = time.monotonic()
            assert {kind for _k, _j, kind, _p, _a in lying} == {"rfi"}
            sim.clear_faults()  # the burst ends while the run waits to ask again
    assert waited_at is not None, "no RFI listing ever kept disagreeing"
    assert (run.status, run.reason) == ("complete", None)
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
    with h.sync.pool.connection() as conn:
        reruns = [r[0] for r in conn.execute(
            "SELECT DISTINCT (job->>'rerun')::int FROM fullsync_jobs WHERE run_id = %s AND kind = 'rfi'",
            (run.run_id,))]
    assert max(reruns) == 3  # the fetcher's two immediate re-runs, then one spaced retry of the run


def test_a_run_nobody_watches_is_carried_to_the_end_by_the_scheduler_even_after_redis_is_wiped(
        sim: SimHandle, harness: Callable[[SimHandle], Harness], database_url: str,
        redis_client: redis.Redis) -> None:
    import dataclasses

    from eva00.stages.scheduler import HEAL_EVERY_STEPS, Scheduler

    h = harness(sim)
    run = h.sync.start(None, ALL_PHASES)  # `eva00 full-sync` without --wait: nobody steps it
    fast = dataclasses.replace(h.pipeline.settings, fullsync_step_s=0.001)
    scheduler = Scheduler(fast, redis_client, h.pipeline.pool)
    wiped = False
    for tick in range(20_000):
        assert scheduler.tick_full_sync() in (0, 1)
        handled = h.pipeline.fetcher.step() + h.pipeline.differ.step()
        run = h.sync.load(run.run_id) or run
        if run.status != "running":
            break
        if tick == 15 and not wiped:
            redis_client.flushall()  # the run's queued jobs are gone with it
            wiped = True
            for _ in range(HEAL_EVERY_STEPS):
                scheduler.tick_full_sync()
        if not handled:
            import time

            time.sleep(0.002)  # let the heal grace pass
    assert wiped and (run.status, run.reason) == ("complete", None)
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}


def test_an_answer_of_an_unknown_shape_fails_its_kind_alone_and_the_run_ends_incomplete_naming_it(
        sim: SimHandle, harness: Callable[[SimHandle], Harness], database_url: str) -> None:
    sim.set_faults("unknown_shape", ratio=1.0, paths="/rest/v1.1/projects/[0-9]+/meetings")
    h = harness(sim)
    run = h.run(h.sync.start(None, ALL_PHASES))
    assert run.status == "incomplete"
    status = run_status(h.sync, run)
    assert {r["kind"] for r in status["reasons"]} == {"meeting"}
    assert all("unreadable answer" in r["reason"] for r in status["reasons"])
    others = _differences(sim, database_url)
    assert others["unexpected"] == [] and others["stale"] == []
    assert others["missing"] and {key[0] for key in others["missing"]} == {"meeting"}
    with h.sync.pool.connection() as conn:
        later_phases = conn.execute("SELECT count(*) FROM fullsync_jobs WHERE run_id = %s AND phase > 2"
                                    " AND outcome = 'paged'", (run.run_id,)).fetchone()
        logged = conn.execute("SELECT count(*), min(detail->>'endpoint'), min(detail->>'sample')"
                              " FROM sync_log WHERE action = 'unreadable_answer'").fetchone()
        alert = conn.execute("SELECT count(*) FROM alerts WHERE alert_key = 'unreadable:meeting'"
                             " AND status = 'open'").fetchone()
    assert later_phases is not None and later_phases[0] > 0  # phases 3 and 4 went on
    projects = len(sim.truth(kinds=["project"])["records"])
    assert logged is not None and logged[0] == projects  # once per (project, kind)
    assert "meetings" in logged[1] and logged[2].startswith('{"results":')
    assert alert == (1,)
    # a later run (the client or Procore fixed) asks again and completes
    sim.clear_faults()
    reopened = h.sync.start(None, ALL_PHASES)
    h.sync.heal(reopened)
    run = h.run(reopened)
    assert (run.status, run.reason) == ("complete", None)
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
