"""webhook_events retention: finished events past the retention leave the table; events the intake
still owes a job, and recent ones, stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from eva00.webhooks.retention import prune_webhook_events

NOW = datetime(2030, 6, 15, tzinfo=UTC)


def _add(conn: psycopg.Connection, key: str, age_days: float, status: str) -> None:
    conn.execute("INSERT INTO webhook_events (event_key, received_at, status, payload)"
                 " VALUES (%s, %s, %s, '{}'::jsonb)", (key, NOW - timedelta(days=age_days), status))


def _keys(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {r[0] for r in conn.execute("SELECT event_key FROM webhook_events")}


def test_finished_events_older_than_the_retention_are_deleted_and_the_rest_stay(
        database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for status in ("enqueued", "ignored", "processed"):
            _add(conn, f"old-{status}", 91, status)
            _add(conn, f"new-{status}", 89, status)
        _add(conn, "old-received", 200, "received")
        assert prune_webhook_events(conn, 90, now=NOW) == 3
    assert _keys(database_url) == {"new-enqueued", "new-ignored", "new-processed", "old-received"}


def test_pruning_works_through_batches_until_nothing_old_is_left(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i in range(7):
            _add(conn, f"old-{i}", 30, "processed")
        assert prune_webhook_events(conn, 7, now=NOW, batch_rows=3) == 7
        assert prune_webhook_events(conn, 7, now=NOW, batch_rows=3) == 0
    assert _keys(database_url) == set()


def test_pruning_commits_on_a_pooled_connection_that_is_not_autocommit(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        _add(conn, "old", 100, "ignored")
    with ConnectionPool(database_url, min_size=1, max_size=1, open=True) as pool, \
            pool.connection() as conn:
        assert prune_webhook_events(conn, 90, now=NOW) == 1
        conn.rollback()
    assert _keys(database_url) == set()
