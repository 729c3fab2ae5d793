"""The whole pipeline against the simulator over real HTTP: scheduler -> fetcher -> differ ->
PostgreSQL, compared with the simulator's ground truth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import redis

from eva00.kinds import FAMILY_KINDS
from eva00.proof.pipeline_local import LocalPipeline as Pipeline
from eva00.simulator.testing import SimHandle


def _replica(database_url: str) -> dict[tuple[str, int, int], tuple[str, bool]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT kind, procore_id, project_id, payload_hash, is_deleted"
                            " FROM replica_records").fetchall()
    return {(kind, pid, 0 if kind == "project" else (project or 0)): (h, deleted)
            for kind, pid, project, h, deleted in rows}


def _truth(sim: SimHandle) -> dict[tuple[str, int, int], tuple[str, bool]]:
    records: list[dict[str, Any]] = sim.truth()["records"]
    return {(r["kind"], r["id"], 0 if r["kind"] == "project" else (r["project_id"] or 0)):
            (r["payload_hash"], r["is_deleted"]) for r in records}


def _live(view: dict[tuple[str, int, int], tuple[str, bool]]) -> dict[tuple[str, int, int], str]:
    return {key: h for key, (h, deleted) in view.items() if not deleted}


def _differences(sim: SimHandle, database_url: str) -> dict[str, list[Any]]:
    truth, replica = _live(_truth(sim)), _live(_replica(database_url))
    return {
        "missing": sorted(set(truth) - set(replica))[:10],
        "unexpected": sorted(set(replica) - set(truth))[:10],
        "stale": sorted(k for k in set(truth) & set(replica) if truth[k] != replica[k])[:10],
    }


def test_a_full_pull_equals_the_simulators_ground_truth(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str) -> None:
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
    assert sim.stats()["token_leaks"] == 0


def test_a_second_cycle_with_no_changes_changes_nothing_and_calls_no_show(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str) -> None:
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    seq = max((e["seq"] for e in sim.ledger()), default=0)
    with psycopg.connect(database_url) as conn:
        versions = conn.execute("SELECT count(*) FROM record_versions").fetchone()
    pipeline.poll_cycle()
    calls = [e for e in sim.ledger(since_seq=seq) if e["host"] == "api" and e["path"] != "/oauth/token"]
    assert calls, "the second cycle polled nothing"
    assert not [e for e in calls if e["path"].rstrip("/").split("/")[-1].isdigit()], "a show was called"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM record_versions").fetchone() == versions


def test_churn_converges_within_two_poll_cycles(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str) -> None:
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    sim.mutate("update", "rfi", count=5, same_second=True)
    sim.mutate("create", "submittal", count=3)
    sim.mutate("update", "meeting", count=2)
    for _cycle in range(2):
        pipeline.poll_cycle()
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}


def test_a_forbidden_project_fails_alone_and_deletes_nothing(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str) -> None:
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    with psycopg.connect(database_url) as conn:
        project = conn.execute("SELECT min(procore_id) FROM projects").fetchone()[0]
    sim.forbid_project(project)
    pipeline.scheduler.tick_reconcile()
    pipeline.drain()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM replica_records WHERE is_deleted").fetchone() == (0,)
        alert = conn.execute("SELECT severity FROM alerts WHERE alert_key = %s",
                             (f"project-forbidden:{project}",)).fetchone()
    assert alert == ("warning",)


def test_an_on_demand_refresh_of_one_rfi_fetches_only_that_rfi(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str,
        redis_client: redis.Redis) -> None:
    from eva00.cli.sync import build_jobs, enqueue

    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    with psycopg.connect(database_url) as conn:
        rfi_id, project_id = conn.execute("SELECT procore_id, project_id FROM rfis LIMIT 1").fetchone()
    sim.mutate("update", "rfi", id=rfi_id, project_id=project_id)
    seq = max(e["seq"] for e in sim.ledger())
    enqueue(redis_client, build_jobs(["rfi"], [project_id], rfi_id, now=0.0))
    pipeline.drain()
    calls = [e["path"] for e in sim.ledger(since_seq=seq) if e["host"] == "api" and "oauth" not in e["path"]]
    assert calls == [f"/rest/v1.0/projects/{project_id}/rfis/{rfi_id}"]
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}


def test_redis_wiped_mid_sync_still_converges(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str,
        redis_client: redis.Redis) -> None:
    pipeline = make_pipeline(sim)
    pipeline.scheduler.tick_family("projects")
    pipeline.drain()
    for family in FAMILY_KINDS:
        pipeline.scheduler.tick_family(family)
    for _ in range(15):
        pipeline.fetcher.step()
        pipeline.differ.step()
    redis_client.flushall()
    pipeline.sync_everything()
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}


# A wrong Total costs no waiting (the window is re-run); a broken body is retried after 5 s.
@pytest.mark.parametrize(("fault", "count"), [("wrong_total", 40), ("truncate", 2), ("malformed_json", 2)])
def test_a_faulty_listing_during_reconciliation_soft_deletes_nothing(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str, fault: str,
        count: int) -> None:
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    sim.set_faults(fault, ratio=1.0, count=count, paths="/rest/v1.0/projects/[0-9]+/rfis")
    pipeline.scheduler.tick_reconcile()
    pipeline.drain()
    sim.clear_faults()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM replica_records WHERE is_deleted").fetchone() == (0,)
    pipeline.poll_cycle()
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}


def test_a_webhook_storm_costs_one_fetch_per_item_within_the_servers_limit(
        sim_factory: Callable[..., SimHandle], make_pipeline: Callable[[SimHandle], Pipeline],
        database_url: str, redis_client: redis.Redis) -> None:
    import uuid

    from eva00.webhooks.events import parse
    from eva00.webhooks.intake import Intake
    from eva00.webhooks.options import WebhookOptions

    sim = sim_factory(rate_limit="60/3", spike="25/1")
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    with psycopg.connect(database_url) as conn:
        rfis = conn.execute("SELECT procore_id, project_id FROM rfis ORDER BY procore_id LIMIT 25").fetchall()
    intake = Intake(WebhookOptions.from_settings(pipeline.settings), redis_client, pipeline.pool)
    seq = max(e["seq"] for e in sim.ledger())
    for repeat in range(8):  # 200 deliveries: every RFI updated 8 times in a burst
        for rfi_id, project_id in rfis:
            intake.accept(parse({
                "id": repeat + 1, "ulid": uuid.uuid4().hex[:26].upper(), "timestamp": "2026-11-01T10:00:00Z",
                "metadata": {}, "user_id": 5, "company_id": sim.company_id, "project_id": project_id,
                "api_version": "v2.0", "event_type": "update", "resource_name": "RFIs",
                "resource_id": rfi_id}))
    pipeline.drain()
    shows = [e for e in sim.ledger(since_seq=seq) if e["host"] == "api" and "/rfis/" in e["path"]]
    assert len(shows) == len(rfis)
    assert {int(e["path"].rsplit("/", 1)[1]) for e in shows} == {r for r, _p in rfis}
    assert sim.stats()["violations"] == 0


def test_a_daily_log_deleted_upstream_is_soft_deleted_by_the_next_listing_of_its_date_window(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str) -> None:
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    with psycopg.connect(database_url) as conn:
        logs = conn.execute("SELECT procore_id, project_id FROM daily_logs WHERE kind = 'manpower_log'"
                            " ORDER BY payload->>'date', procore_id").fetchall()
    recent, oldest = ({"id": i, "project_id": p} for i, p in (logs[-1], logs[0]))
    for record in (recent, oldest):
        sim.mutate("delete", "manpower_log", id=record["id"], project_id=record["project_id"])
    _after_the_last_fetchs_second()
    pipeline.poll_cycle()  # the recent days' windows: the newest log is gone from its window
    replica = _replica(database_url)
    assert replica[("manpower_log", recent["id"], recent["project_id"])][1] is True
    pipeline.scheduler.tick_reconcile()  # every window of the project's history
    pipeline.drain()
    replica = _replica(database_url)
    assert replica[("manpower_log", oldest["id"], oldest["project_id"])][1] is True
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
    deleted = {key for key, (_h, gone) in replica.items() if gone}
    assert deleted == {key for key, (_h, gone) in _truth(sim).items() if gone}, "no false deletes"


@pytest.mark.parametrize("offset_s", [-7200.0, 7200.0], ids=["server behind", "server ahead"])
def test_a_server_clock_hours_off_the_hosts_still_converges_and_no_cursor_passes_the_servers_time(
        sim_factory: Callable[..., SimHandle], make_pipeline: Callable[[SimHandle], Pipeline],
        database_url: str, offset_s: float) -> None:
    import email.utils
    import time

    import requests

    sim = sim_factory(clock_offset_s=offset_s)
    answer = requests.get(sim.api_base + "/_sim/health", timeout=10)
    server_now = email.utils.parsedate_to_datetime(answer.headers["Date"]).timestamp()
    assert abs(server_now - (time.time() + offset_s)) < 5
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    sim.mutate("update", "rfi", count=5)
    sim.mutate("create", "submittal", count=3)
    for _cycle in range(2):
        pipeline.poll_cycle()
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
    with psycopg.connect(database_url) as conn:
        latest = conn.execute("SELECT max(extract(epoch FROM cursor_at)) FROM sync_cursors").fetchone()
    assert latest is not None and float(latest[0]) <= time.time() + offset_s


def test_a_drawing_area_deleted_upstream_takes_its_drawings_along_and_brings_them_back_restored(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str) -> None:
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    with psycopg.connect(database_url) as conn:
        area, project, drawings = conn.execute(
            "SELECT a.procore_id, a.project_id, count(d.*) FROM drawings a JOIN drawings d"
            " ON d.kind = 'drawing' AND (d.payload->>'drawing_area_id')::bigint = a.procore_id"
            " WHERE a.kind = 'drawing_area' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1").fetchone()
    assert drawings > 0
    sim.mutate("delete", "drawing_area", id=area, project_id=project)
    pipeline.scheduler.tick_reconcile()  # the areas' listing is complete: the area is gone
    pipeline.drain()
    replica = _replica(database_url)
    assert replica[("drawing_area", area, project)][1] is True
    deleted = {key for key, (_h, gone) in replica.items() if gone}
    assert deleted == {key for key, (_h, gone) in _truth(sim).items() if gone}
    assert sum(1 for kind, _i, _p in deleted if kind == "drawing") == drawings
    sim.mutate("restore", "drawing_area", id=area, project_id=project)
    pipeline.scheduler.tick_reconcile()
    pipeline.drain()
    pipeline.poll_cycle()
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
    assert {k for k, (_h, gone) in _replica(database_url).items() if gone} == {
        k for k, (_h, gone) in _truth(sim).items() if gone}


def _after_the_last_fetchs_second() -> None:
    """Procore's Date has whole seconds, and a listing stamped in the same second as a row's last
    fetch cannot tell which came first, so it never deletes that row; a test that expects the
    delete lets the server's clock reach the next second first."""
    import time

    time.sleep(1.05)


def _synced_then_deleted_upstream(sim: SimHandle, pipeline: Pipeline, database_url: str,
                                  kind: str) -> tuple[int, int]:
    """Everything synced, then the first record of ``kind`` (in the drawings table) deleted in
    the simulator; returns its (id, project)."""
    pipeline.sync_everything()
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT procore_id, project_id FROM drawings WHERE kind = %s"
                           " ORDER BY procore_id LIMIT 1", (kind,)).fetchone()
    assert row is not None, f"the data set has no {kind}"
    sim.mutate("delete", kind, id=row[0], project_id=row[1])
    return int(row[0]), int(row[1])


def test_a_drawing_deleted_upstream_is_soft_deleted_by_its_areas_next_listing_and_the_others_stay(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str) -> None:
    pipeline = make_pipeline(sim)
    drawing, project = _synced_then_deleted_upstream(sim, pipeline, database_url, "drawing")
    _after_the_last_fetchs_second()
    pipeline.scheduler.tick_family("drawings")  # every area is listed whole, one area at a time
    pipeline.drain()
    replica = _replica(database_url)
    assert replica[("drawing", drawing, project)][1] is True
    assert {k for k, (_h, d) in replica.items() if d} == {k for k, (_h, d) in _truth(sim).items() if d}
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}


def test_a_drawing_area_deleted_between_fan_out_and_listing_is_no_refusal_and_is_reconciled_at_once(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str) -> None:
    pipeline = make_pipeline(sim)
    area, project = _synced_then_deleted_upstream(sim, pipeline, database_url, "drawing_area")
    pipeline.scheduler.tick_family("drawings")  # the replica still lists the area: its drawings 404
    pipeline.drain()
    with psycopg.connect(database_url) as conn:
        refused = conn.execute("SELECT count(*) FROM sync_log WHERE action = 'fetch_refused'").fetchone()
        gone = conn.execute("SELECT count(*) FROM sync_log WHERE action = 'parent_gone'").fetchone()
    assert refused == (0,) and gone is not None and gone[0] >= 1
    replica = _replica(database_url)
    assert replica[("drawing_area", area, project)][1] is True
    assert {k for k, (_h, d) in replica.items() if d} == {k for k, (_h, d) in _truth(sim).items() if d}


def test_a_dead_lettered_poll_job_frees_its_kind_for_the_next_tick_at_once(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], redis_client: redis.Redis) -> None:
    from eva00 import keys
    from eva00.messages import BudgetClass, PollJob, PollMode

    pipeline = make_pipeline(sim)
    marker = keys.job_pending_key("widget:incremental", 7)
    redis_client.set(marker, "schedule:widgets", ex=600)
    job = PollJob(kind="widget", project_id=7, mode=PollMode.INCREMENTAL, budget=BudgetClass.SCHEDULED,
                  reason="schedule:widgets", requested_at=0.0, pending_key=marker)
    redis_client.xadd(keys.STREAM_SYNC_SCHEDULED, job.to_fields())  # type: ignore[arg-type]
    pipeline.drain()
    assert pipeline.fetcher.stats.dead_lettered == 1
    assert redis_client.exists(marker) == 0


def test_a_polls_pending_marker_is_released_after_the_differ_commits_its_last_page_not_before(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], redis_client: redis.Redis) -> None:
    from eva00 import keys
    from eva00.messages import PollMode

    pipeline = make_pipeline(sim)
    scheduler = pipeline.scheduler
    assert scheduler.enqueue(scheduler.jobs_for(["vendor"], [], PollMode.INCREMENTAL, "test"), ttl_s=600) == 1
    marker = keys.job_pending_key("vendor:incremental", None)
    differ = pipeline.differ.handler
    held_while_handling: list[int] = []

    class Watching:
        accepts = differ.accepts

        def __call__(self, conn: psycopg.Connection[Any], message: Any, delivery: Any) -> Any:
            out = differ(conn, message, delivery)
            held_while_handling.append(int(redis_client.exists(marker)))
            return out

    pipeline.differ.handler = Watching()
    pipeline.fetcher.step()
    assert redis_client.exists(marker) == 1, "the page on its way to the differ still holds it"
    pipeline.drain()
    assert held_while_handling and set(held_while_handling) == {1}, "held until COMMIT"
    assert redis_client.exists(marker) == 0


def test_a_webhook_item_jobs_debounce_key_is_cleared_before_the_fetcher_handles_it(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], redis_client: redis.Redis) -> None:
    from eva00 import keys
    from eva00.messages import BudgetClass, PollJob, PollMode
    from eva00.runtime.bus import Bus

    pipeline = make_pipeline(sim)
    rfi = next(r for r in sim.truth()["records"] if r["kind"] == "rfi" and not r["is_deleted"])
    key = keys.webhook_debounce_key("rfi", rfi["project_id"], rfi["id"])
    job = PollJob(kind="rfi", project_id=rfi["project_id"], mode=PollMode.ITEM, budget=BudgetClass.WEBHOOK,
                  reason="webhook:update", item_id=rfi["id"], requested_at=0.0)
    assert Bus(redis_client, "test").publish_unless_key(keys.STREAM_SYNC_PRIORITY, job, key=key, ttl_s=600)
    fetcher = pipeline.fetcher.handler
    key_at_start: list[int] = []

    class Watching:
        accepts = fetcher.accepts

        def __call__(self, conn: psycopg.Connection[Any], message: Any, delivery: Any) -> Any:
            key_at_start.append(int(redis_client.exists(key)))
            return fetcher(conn, message, delivery)

    pipeline.fetcher.handler = Watching()
    pipeline.drain()
    assert key_at_start == [0], "an update arriving during the fetch queues a fresh job"
    assert pipeline.fetcher.stats.handled >= 1 and pipeline.fetcher.stats.dead_lettered == 0


def test_revisions_of_an_obsoleted_drawing_stay_live_through_reconciliation(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str) -> None:
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT payload->>'drawing_id', project_id FROM drawing_revisions"
                           " WHERE kind = 'drawing_revision' ORDER BY procore_id LIMIT 1").fetchone()
    assert row is not None
    sim.mutate("obsolete_drawing", id=int(row[0]), project_id=row[1])
    _after_the_last_fetchs_second()
    pipeline.scheduler.tick_reconcile()
    pipeline.drain()
    with psycopg.connect(database_url) as conn:
        revisions = conn.execute("SELECT count(*), count(*) FILTER (WHERE is_deleted) FROM drawing_revisions"
                                 " WHERE kind = 'drawing_revision' AND payload->>'drawing_id' = %s",
                                 (row[0],)).fetchone()
    assert revisions is not None and revisions[0] > 0 and revisions[1] == 0
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}


def test_spec_section_revisions_are_synced_per_division_old_ones_kept_deleted_ones_soft_deleted(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str) -> None:
    pipeline = make_pipeline(sim)
    project = min(r["id"] for r in sim.truth(["project"])["records"])
    sim.mutate("create", "spec_section_revision", project_id=project)  # its section's old one is not current
    pipeline.sync_everything()
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
    gone = sim.mutate("delete", "spec_section_revision", project_id=project)[0]["id"]
    _after_the_last_fetchs_second()
    pipeline.scheduler.tick_family("spec_sections")
    pipeline.drain()
    replica = _replica(database_url)
    assert replica[("spec_section_revision", gone, project)][1] is True
    assert {k for k, (_h, d) in replica.items() if d} == {k for k, (_h, d) in _truth(sim).items() if d}
    assert _differences(sim, database_url) == {"missing": [], "unexpected": [], "stale": []}
    calls = [e for e in sim.ledger() if "specification_section_revisions" in e["path"]]
    assert calls and all("specification_section_division_id=" in e["query"] for e in calls)
