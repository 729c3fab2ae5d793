"""The webhook intake against real PostgreSQL and Redis: one row per event, at most one queued
fetch per item, nothing lost when Redis or PostgreSQL fail between the steps."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import SIM_COMPANY_ID, Settings
from eva00.keys import webhook_debounce_key as debounce_key
from eva00.messages import PollJob, decode
from eva00.ops.localstack import free_port
from eva00.replica import deletes
from eva00.replica.records import FetchedRecord, upsert_records
from eva00.webhooks.events import parse
from eva00.webhooks.intake import Intake, Unavailable
from eva00.webhooks.options import WebhookOptions
from eva00.webhooks.server import listener_redis

PROJECT = 2468
FETCHED = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def event(resource_id: int = 54321, *, event_type: str = "update", resource_name: str = "RFIs",
          project_id: int | None = PROJECT, company_id: int = SIM_COMPANY_ID,
          ulid: str | None = None) -> dict[str, Any]:
    return {"id": 1, "ulid": ulid or uuid.uuid4().hex[:26].upper(),
            "timestamp": "2026-11-01T10:00:00.000000Z", "metadata": {}, "user_id": 5,
            "company_id": company_id, "project_id": project_id, "api_version": "v2.0",
            "event_type": event_type, "resource_name": resource_name, "resource_id": resource_id}


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    with ConnectionPool(settings.effective_database_url, min_size=1, max_size=10, open=True) as p:
        with p.connection() as conn:
            upsert_records(conn, [
                FetchedRecord("project", PROJECT, None, {"id": PROJECT, "name": "Tower"},
                              FETCHED, "api"),
                FetchedRecord("project", 1357, None, {"id": 1357, "name": "Old"}, FETCHED, "api"),
                FetchedRecord("rfi", 54321, PROJECT, {"id": 54321, "subject": "Beam"}, FETCHED,
                              "api"),
            ])
            deletes.mark_deleted(conn, "project", None, 1357, FETCHED)
        yield p


@pytest.fixture
def options(settings: Settings) -> WebhookOptions:
    return WebhookOptions.from_settings(settings)


@pytest.fixture
def intake(options: WebhookOptions, redis_client: redis.Redis, pool: ConnectionPool) -> Intake:
    return Intake(options, redis_client, pool, clock=lambda: 1_790_000_000.0)


def queued_jobs(client: redis.Redis) -> list[PollJob]:
    jobs = []
    for _entry_id, fields in client.xrange(keys.STREAM_SYNC_PRIORITY):
        job = decode(fields)
        assert isinstance(job, PollJob)
        jobs.append(job)
    return jobs


def rows(pool: ConnectionPool) -> list[tuple[Any, ...]]:
    with pool.connection() as conn:
        return conn.execute("SELECT event_key, status, resource_name, resource_id, project_id,"
                            " detail FROM webhook_events ORDER BY id").fetchall()


def test_an_update_is_recorded_and_queues_one_item_fetch_on_the_webhook_budget(
        intake: Intake, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    outcome = intake.accept(parse(event(ulid="01ULIDUPDATE")))
    assert (outcome.http_status, outcome.result) == (202, "enqueued")
    [job] = queued_jobs(redis_client)
    assert (job.kind, job.project_id, job.item_id, job.mode, job.budget) == (
        "rfi", PROJECT, 54321, "item", "webhook")
    assert job.reason == "webhook:update" and job.requested_at == 1_790_000_000.0
    [row] = rows(pool)
    assert row[:5] == ("01ULIDUPDATE", "enqueued", "RFIs", 54321, PROJECT)
    entry = redis_client.get(debounce_key("rfi", PROJECT, 54321))
    assert entry is not None and row[5] == f"fetch queued as {entry.decode()}"
    assert 0 < redis_client.ttl(debounce_key("rfi", PROJECT, 54321)) <= 3600


def test_a_duplicate_or_a_replay_a_day_later_queues_nothing_more(
        intake: Intake, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    payload = event(ulid="01ULIDTWICE")
    assert intake.accept(parse(payload)).result == "enqueued"
    redis_client.delete(debounce_key("rfi", PROJECT, 54321))  # the fetch ran since
    duplicate = intake.accept(parse(payload))
    assert (duplicate.http_status, duplicate.result) == (200, "duplicate")
    assert len(queued_jobs(redis_client)) == 1
    assert len(rows(pool)) == 1


def test_a_burst_of_updates_to_one_record_becomes_one_fetch(
        intake: Intake, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    results = Counter(intake.accept(parse(event())).result for _ in range(10))
    assert results == {"enqueued": 1, "debounced": 9}
    assert len(queued_jobs(redis_client)) == 1
    assert Counter(row[1] for row in rows(pool)) == {"enqueued": 10}


def test_an_update_after_the_fetcher_started_queues_a_new_fetch(
        intake: Intake, redis_client: redis.Redis) -> None:
    intake.accept(parse(event()))
    intake.accept(parse(event()))
    # The fetcher's side of the contract: DEL the debounce key when the job starts.
    redis_client.delete(debounce_key("rfi", PROJECT, 54321))
    assert intake.accept(parse(event())).result == "enqueued"
    assert len(queued_jobs(redis_client)) == 2


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(event(company_id=999), "company 999 is not ours", id="unknown company"),
        pytest.param(event(project_id=777), "project 777 is not in the replica",
                     id="unknown project"),
        pytest.param(event(project_id=1357), "project 1357 is not in the replica",
                     id="deleted project"),
        pytest.param(event(resource_name="Punch Items"),
                     "resource 'Punch Items' is not replicated", id="unknown resource"),
        pytest.param(event(project_id=None), "RFIs event has no project_id",
                     id="project resource without project"),
    ],
)
def test_events_with_nothing_to_fetch_are_recorded_ignored(
        intake: Intake, pool: ConnectionPool, redis_client: redis.Redis,
        payload: dict[str, Any], reason: str) -> None:
    outcome = intake.accept(parse(payload))
    assert (outcome.http_status, outcome.result, outcome.detail) == (202, "ignored", reason)
    [row] = rows(pool)
    assert (row[1], row[5]) == ("ignored", reason)
    assert queued_jobs(redis_client) == []
    assert intake.accept(parse(payload)).result == "duplicate"


def test_a_new_project_queues_a_fetch_of_that_project(
        intake: Intake, redis_client: redis.Redis) -> None:
    outcome = intake.accept(parse(event(9999, event_type="create", resource_name="Projects",
                                        project_id=9999)))
    assert outcome.result == "enqueued"
    [job] = queued_jobs(redis_client)
    assert (job.kind, job.project_id, job.item_id) == ("project", None, 9999)


def test_a_company_level_event_needs_no_project(intake: Intake, redis_client: redis.Redis) -> None:
    assert intake.accept(parse(event(42, resource_name="Company Vendors",
                                     project_id=None))).result == "enqueued"
    [job] = queued_jobs(redis_client)
    assert (job.kind, job.project_id, job.item_id) == ("vendor", None, 42)


def delete_pending(pool: ConnectionPool, procore_id: int) -> bool:
    with pool.connection() as conn:
        row = conn.execute("SELECT delete_pending FROM rfis WHERE procore_id = %s",
                           (procore_id,)).fetchone()
    assert row is not None
    return bool(row[0])


def test_a_delete_marks_the_record_pending_and_queues_the_confirming_fetch(
        intake: Intake, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    assert not delete_pending(pool, 54321)
    outcome = intake.accept(parse(event(event_type="delete")))
    assert outcome.result == "enqueued"
    assert delete_pending(pool, 54321)
    [job] = queued_jobs(redis_client)
    assert (job.kind, job.item_id, job.reason) == ("rfi", 54321, "webhook:delete")
    with pool.connection() as conn:  # marked only, never deleted by a hint
        assert conn.execute("SELECT is_deleted FROM rfis WHERE procore_id = 54321").fetchone() == (
            False,)


def test_a_delete_debounced_into_a_queued_fetch_still_marks_the_record(
        intake: Intake, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    intake.accept(parse(event()))
    assert intake.accept(parse(event(event_type="delete"))).result == "debounced"
    assert delete_pending(pool, 54321)
    assert len(queued_jobs(redis_client)) == 1


def test_a_v4_event_is_handled_like_a_v2_one(intake: Intake, redis_client: redis.Redis) -> None:
    payload = {"id": "01JMYXMZRBVKK0PC6XS8SA4QRF", "timestamp": "2026-11-01T10:00:00Z",
               "reason": "create", "company_id": str(SIM_COMPANY_ID), "project_id": str(PROJECT),
               "user_id": "5", "resource_type": "Submittals", "resource_id": "777"}
    assert intake.accept(parse(payload)).result == "enqueued"
    [job] = queued_jobs(redis_client)
    assert (job.kind, job.project_id, job.item_id, job.reason) == (
        "submittal", PROJECT, 777, "webhook:create")


def dead_redis() -> redis.Redis:
    return listener_redis(f"redis://127.0.0.1:{free_port()}/0")


def test_redis_down_answers_503_and_a_retry_of_the_same_event_finishes_it(
        options: WebhookOptions, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    payload = event(ulid="01ULIDREDISDOWN")
    with pytest.raises(Unavailable):
        Intake(options, dead_redis(), pool).accept(parse(payload))
    assert [row[1] for row in rows(pool)] == ["received"]
    retried = Intake(options, redis_client, pool).accept(parse(payload))  # Procore's retry
    assert retried.result == "enqueued"
    assert [row[1] for row in rows(pool)] == ["enqueued"]
    assert len(queued_jobs(redis_client)) == 1


def test_events_left_received_are_requeued_once_old_enough(
        options: WebhookOptions, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    for number in range(3):
        with pytest.raises(Unavailable):
            Intake(options, dead_redis(), pool).accept(parse(event(1000 + number)))
    recovering = Intake(options, redis_client, pool)
    assert recovering.requeue_received() == 0  # younger than the grace: maybe still in flight
    with pool.connection() as conn:
        conn.execute("UPDATE webhook_events SET received_at = received_at - interval '1 minute'")
    assert recovering.requeue_received() == 3
    assert {job.item_id for job in queued_jobs(redis_client)} == {1000, 1001, 1002}
    assert {row[1] for row in rows(pool)} == {"enqueued"}
    assert recovering.requeue_received(older_than_s=0) == 0


def test_a_requeue_after_the_job_was_queued_but_not_recorded_adds_no_second_job(
        intake: Intake, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    intake.accept(parse(event()))
    with pool.connection() as conn:  # as if the process died before the status update
        conn.execute("UPDATE webhook_events SET status = 'received'")
    assert intake.requeue_received(older_than_s=0) == 1
    assert len(queued_jobs(redis_client)) == 1
    assert [row[1] for row in rows(pool)] == ["enqueued"]


def test_postgresql_down_answers_503_and_queues_nothing(
        options: WebhookOptions, redis_client: redis.Redis) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=1"
    with ConnectionPool(url, min_size=0, max_size=1, open=True) as dead_pool, \
            pytest.raises(Unavailable):
        Intake(options, redis_client, dead_pool, pool_timeout_s=0.5).accept(parse(event()))
    assert queued_jobs(redis_client) == []


def test_an_unreadable_body_is_kept_once_raw_with_its_reason(intake: Intake, pool: ConnectionPool) -> None:
    body = b'{"b": 1, "a": [2]}'
    assert intake.record_unreadable(body, "event_type is missing").http_status == 200
    assert intake.record_unreadable(body, "event_type is missing").http_status == 200  # a redelivery
    [row] = rows(pool)
    assert row[0].startswith("raw:") and row[1] == "ignored"
    assert row[5] == "event_type is missing (18 bytes)"
    with pool.connection() as conn:
        assert conn.execute("SELECT payload, raw_body FROM webhook_events").fetchone() == (
            {"b": 1, "a": [2]}, '{"b": 1, "a": [2]}')


def test_concurrent_deliveries_with_duplicates_queue_one_fetch_per_item(
        options: WebhookOptions, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    # 200 items at once: above the flood cap, which tests/security/test_webhook_flood.py covers.
    intake = Intake(dataclasses.replace(options, jobs_per_minute=1000), redis_client, pool,
                    clock=lambda: 1_790_000_000.0)
    with pool.connection() as conn:
        upsert_records(conn, [FetchedRecord("project", PROJECT + 1, None, {"id": PROJECT + 1},
                                            FETCHED, "api")])
    unique = [event(5000 + n % 200, project_id=PROJECT + n % 2) for n in range(600)]
    deliveries = unique + unique[::3][:400]  # 1,000 deliveries, duplicates mixed in
    results: Counter[str] = Counter()
    lock = threading.Lock()

    errors: list[BaseException] = []

    def deliver(share: list[dict[str, Any]]) -> None:
        for payload in share:
            try:
                result = intake.accept(parse(payload)).result
            except Exception as exc:  # a thread must not die silently: that is a lost delivery
                with lock:
                    errors.append(exc)
                continue
            with lock:
                results[result] += 1

    threads = [threading.Thread(target=deliver, args=(deliveries[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)  # a loaded machine is slow, not wrong: count only once every thread is done
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    jobs = queued_jobs(redis_client)
    items = Counter((job.project_id, job.item_id) for job in jobs)
    assert len(jobs) == 200 and set(items.values()) == {1}
    # A copy that arrives while its original is still being finished is answered like the original
    # (debounced) rather than as a duplicate: either way it queues nothing more.
    assert results["enqueued"] == 200 and sum(results.values()) == 800
    assert results["duplicate"] <= 200 and results["duplicate"] + results["debounced"] == 600
    assert len(rows(pool)) == 600


def test_the_row_of_a_debounced_event_says_what_covers_it(
        intake: Intake, pool: ConnectionPool) -> None:
    intake.accept(parse(event()))
    intake.accept(parse(event()))
    details = [row[5] for row in rows(pool)]
    assert details[0].startswith("fetch queued as ")
    assert details[1] == "covered by the fetch already queued"


def test_a_status_update_failure_after_queueing_still_answers_accepted(
        intake: Intake, pool: ConnectionPool, redis_client: redis.Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(conn: psycopg.Connection, row_id: int, status: Any, detail: str) -> None:
        raise psycopg.OperationalError("connection lost")

    monkeypatch.setattr(Intake, "_set_status", staticmethod(broken))
    assert intake.accept(parse(event())).result == "enqueued"
    assert len(queued_jobs(redis_client)) == 1
    monkeypatch.undo()
    assert [row[1] for row in rows(pool)] == ["received"]  # the requeue will finish it
    assert intake.requeue_received(older_than_s=0) == 1
    assert len(queued_jobs(redis_client)) == 1
