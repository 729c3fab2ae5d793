"""Issue 17, finding 7: a webhook flood with a valid secret.

Every distinct resource id used to become its own priority job, without a cap; and a forged delete
event set ``delete_pending``, which the mass-delete guard counted as a delete's second signal. Here
the attack is replayed against the real intake (PostgreSQL, Redis) and must fail: at most the cap of
single-record jobs a minute plus one poll per (project, kind), and no forged delete gets a mass
delete past the guard."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import SIM_COMPANY_ID, Settings
from eva00.messages import PollJob, PollMode, decode
from eva00.proof.pipeline_local import LocalPipeline
from eva00.replica import deletes
from eva00.replica.records import FetchedRecord, upsert_records
from eva00.simulator.testing import SimHandle
from eva00.webhooks.events import parse
from eva00.webhooks.intake import Intake
from eva00.webhooks.options import WebhookOptions

PROJECTS = (2468, 2469)
FETCHED = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
NOW_S = 1_790_000_000.0  # one clock minute for the whole flood


def event(resource_id: int, *, resource_name: str = "RFIs", project_id: int = PROJECTS[0],
          event_type: str = "update") -> dict[str, Any]:
    return {"id": 1, "ulid": uuid.uuid4().hex[:26].upper(), "timestamp": "2026-11-01T10:00:00.000000Z",
            "metadata": {}, "user_id": 5, "company_id": SIM_COMPANY_ID, "project_id": project_id,
            "api_version": "v2.0", "event_type": event_type, "resource_name": resource_name,
            "resource_id": resource_id}


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    with ConnectionPool(settings.effective_database_url, min_size=1, max_size=10, open=True) as p:
        with p.connection() as conn:
            upsert_records(conn, [FetchedRecord("project", project, None, {"id": project}, FETCHED, "api")
                                  for project in PROJECTS])
        yield p


@pytest.fixture
def options(settings: Settings) -> WebhookOptions:
    return WebhookOptions.from_settings(settings)


def queued(client: redis.Redis) -> list[PollJob]:
    jobs = [decode(fields) for _entry, fields in client.xrange(keys.STREAM_SYNC_PRIORITY)]
    assert all(isinstance(job, PollJob) for job in jobs)
    return [job for job in jobs if isinstance(job, PollJob)]


def deliver_all(intake: Intake, payloads: list[dict[str, Any]], threads: int = 8) -> Counter[int]:
    """The listener's worker threads at once; returns the HTTP statuses the intake chose."""
    statuses: Counter[int] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def deliver(share: list[dict[str, Any]]) -> None:
        for payload in share:
            try:
                status = intake.accept(parse(payload)).http_status
            except Exception as exc:  # a dying thread would hide a lost delivery
                with lock:
                    errors.append(exc)
                continue
            with lock:
                statuses[status] += 1

    workers = [threading.Thread(target=deliver, args=(payloads[n::threads],)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(600)
    assert not any(worker.is_alive() for worker in workers) and errors == []
    return statuses


def test_ten_thousand_distinct_ids_in_a_minute_queue_at_most_the_cap_and_one_poll_per_kind(
        options: WebhookOptions, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    assert options.jobs_per_minute == 60  # the production default
    intake = Intake(options, redis_client, pool, clock=lambda: NOW_S)
    kinds = (("RFIs", "rfi"), ("Submittals", "submittal"))
    flood = [event(10_000_000 + n, resource_name=kinds[n % 2][0], project_id=PROJECTS[n // 2 % 2])
             for n in range(10_000)]
    statuses = deliver_all(intake, flood)
    assert statuses == Counter({202: 10_000})  # every event answered and recorded
    jobs = queued(redis_client)
    items = [job for job in jobs if job.mode == PollMode.ITEM]
    polls = Counter((job.kind, job.project_id) for job in jobs if job.mode == PollMode.INCREMENTAL)
    assert len(items) == options.jobs_per_minute
    assert polls == Counter({(kind, project): 1 for _name, kind in kinds for project in PROJECTS})
    assert len(jobs) == options.jobs_per_minute + 4
    assert all(job.budget == "webhook" and job.pending_key for job in jobs if job.mode != PollMode.ITEM)
    with pool.connection() as conn:
        by_status = dict(conn.execute("SELECT status, count(*) FROM webhook_events GROUP BY 1").fetchall())
    assert by_status == {"enqueued": 10_000}


def test_the_next_minute_has_its_own_cap_and_a_finished_poll_can_be_queued_again(
        options: WebhookOptions, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    now = [NOW_S]
    intake = Intake(options, redis_client, pool, clock=lambda: now[0])
    deliver_all(intake, [event(20_000_000 + n) for n in range(options.jobs_per_minute + 5)], threads=1)
    assert [job.mode for job in queued(redis_client)].count(PollMode.INCREMENTAL) == 1
    [poll] = [job for job in queued(redis_client) if job.mode == PollMode.INCREMENTAL]
    redis_client.delete(poll.pending_key)  # the poll ended (PendingMarkers releases it)
    deliver_all(intake, [event(21_000_000)], threads=1)
    assert [job.mode for job in queued(redis_client)].count(PollMode.INCREMENTAL) == 2
    now[0] += 60
    assert intake.accept(parse(event(22_000_000))).result == "enqueued"


def live_rfis(pool: ConnectionPool) -> list[int]:
    with pool.connection() as conn:
        return [int(row[0]) for row in conn.execute(
            "SELECT procore_id FROM rfis WHERE NOT is_deleted ORDER BY 1").fetchall()]


def test_forged_delete_events_cannot_push_a_mass_delete_through_the_guard(
        options: WebhookOptions, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    ids = list(range(30_000_001, 30_000_021))
    with pool.connection() as conn:
        upsert_records(conn, [FetchedRecord("rfi", i, PROJECTS[0], {"id": i}, FETCHED, "api") for i in ids])
    intake = Intake(options, redis_client, pool, clock=lambda: NOW_S)
    # The attacker holds the secret and "deletes" every RFI; then one listing comes back empty
    # (Procore's truncated answer, or a proxy the attacker controls).
    assert deliver_all(intake, [event(i, event_type="delete") for i in ids]) == Counter({202: 20})
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM rfis WHERE delete_pending").fetchone() == (20,)
        result = deletes.soft_delete_missing(conn, "rfi", PROJECTS[0], [], max_ratio=0.10,
                                             at=FETCHED + timedelta(hours=1))
    assert (result.guard_tripped, result.deleted, result.held) == (True, 0, 20)
    assert live_rfis(pool) == ids
    # The webhook's flags became the listing's own: only a second listing can confirm them.
    with pool.connection() as conn:
        sources = conn.execute("SELECT DISTINCT delete_pending_source FROM rfis WHERE delete_pending")
        assert sources.fetchall() == [("listing",)]


def test_forged_delete_events_cannot_push_a_mass_delete_through_a_recycle_bin_listing(
        options: WebhookOptions, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    ids = list(range(50_000_001, 50_000_021))
    with pool.connection() as conn:
        upsert_records(conn, [FetchedRecord("rfi", i, PROJECTS[0], {"id": i}, FETCHED, "api") for i in ids])
    intake = Intake(options, redis_client, pool, clock=lambda: NOW_S)
    assert deliver_all(intake, [event(i, event_type="delete") for i in ids]) == Counter({202: 20})
    # then a recycle bin (a delete signal) names them all: one signal, however many webhooks
    with pool.connection() as conn:
        result = deletes.soft_delete_signalled(conn, "rfi", PROJECTS[0], ids, max_ratio=0.10,
                                               at=FETCHED + timedelta(hours=1))
    assert (result.guard_tripped, result.deleted, result.held) == (True, 0, 20)
    assert live_rfis(pool) == ids


def test_a_forged_delete_never_outranks_a_guard_flag_already_set_by_a_listing(
        options: WebhookOptions, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    ids = list(range(40_000_001, 40_000_011))
    with pool.connection() as conn:
        upsert_records(conn, [FetchedRecord("rfi", i, PROJECTS[0], {"id": i}, FETCHED, "api") for i in ids])
        held = deletes.soft_delete_missing(conn, "rfi", PROJECTS[0], ids[:8], max_ratio=0.10,
                                           at=FETCHED + timedelta(hours=1))
    assert (held.guard_tripped, held.held) == (True, 2)
    intake = Intake(options, redis_client, pool, clock=lambda: NOW_S)
    deliver_all(intake, [event(i, event_type="delete") for i in ids], threads=1)
    with pool.connection() as conn:
        # The two the listing held keep its flag (a real delete lands at the next listing); the
        # eight forged ones are webhook flags and, missing from one more listing, are only held.
        second = deletes.soft_delete_missing(conn, "rfi", PROJECTS[0], [], max_ratio=0.10,
                                             at=FETCHED + timedelta(hours=2))
    assert (second.guard_tripped, second.deleted, second.held) == (True, 2, 8)
    assert live_rfis(pool) == ids[:8]


def test_events_over_the_cap_are_fetched_by_the_poll_they_fold_into(
        sim_factory: Callable[..., SimHandle], make_pipeline: Callable[[SimHandle], LocalPipeline],
        redis_client: redis.Redis) -> None:
    sim = sim_factory(projects=2, items=60)
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    changed = sim.mutate("update", "rfi", count=20, same_second=False)
    time.sleep(1.05)  # Procore's Date has whole seconds: the poll's window must reach past the changes
    options = dataclasses.replace(WebhookOptions.from_settings(pipeline.settings), jobs_per_minute=3)
    intake = Intake(options, redis_client, pipeline.pool)
    seq = max(entry["seq"] for entry in sim.ledger())
    results = Counter(intake.accept(parse(event(c["id"], project_id=c["project_id"]))).result
                      for c in changed)
    assert results["enqueued"] == 3 and results["folded"] == 17
    pipeline.drain()
    requests = [e for e in sim.ledger(since_seq=seq) if e["host"] == "api"]
    listings = Counter(e["path"] for e in requests if e["path"].endswith("/rfis"))
    projects = {c["project_id"] for c in changed}
    # One listing per project (the folded poll), whatever the number of events folded into it.
    assert listings == Counter({f"/rest/v1.0/projects/{p}/rfis": 1 for p in projects})
    assert len(requests) < len(changed)
    truth = {r["id"]: r["payload_hash"] for r in sim.truth(["rfi"])["records"]}
    with pipeline.pool.connection() as conn:
        replica = dict(conn.execute("SELECT procore_id, payload_hash FROM rfis WHERE procore_id = ANY(%s)",
                                    ([c["id"] for c in changed],)).fetchall())
    assert replica == {c["id"]: truth[c["id"]] for c in changed}
    assert list(redis_client.scan_iter(match=keys.JOB_PENDING_PREFIX + ":*")) == []  # polls ended
