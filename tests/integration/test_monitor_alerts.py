"""Each alert condition of the monitor: raised when it holds, resolved when it clears."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.procore.keys import DEFAULT_KEYS
from eva00.runtime import alerts, db
from eva00.stages.monitor import Monitor
from eva00.stages.supervisor_listener import FATAL, RUNNING, handle_event

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    pool = db.make_pool(settings, max_size=2, name="test-monitor")
    yield pool
    pool.close()


class Box:
    """Mutable inputs the monitor reads through its injected callables."""

    def __init__(self) -> None:
        self.disk_free = 0.5
        self.processes: list[dict[str, Any]] = []


@pytest.fixture
def box() -> Box:
    return Box()


@pytest.fixture
def monitor(settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, box: Box) -> Monitor:
    return Monitor(settings, redis_client, pool, processes=lambda: box.processes,
                   disk_free_ratio=lambda: box.disk_free, clock=lambda: NOW)


def open_alerts(pool: ConnectionPool) -> dict[str, str]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT alert_key, severity FROM alerts WHERE status <> 'resolved'").fetchall()
    return dict(rows)


def finish_poll(pool: ConnectionPool, kind: str, project_id: int | None, at: datetime,
                mode: str = "incremental") -> None:
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO poll_pages (poll_id, page, kind, project_id, mode, is_last, pages_total, complete,"
            " finished_at, committed_at) VALUES (%s, 1, %s, %s, %s, true, 1, true, %s, %s)",
            (f"{kind}-{project_id}-{at.timestamp()}-{mode}", kind, project_id, mode, at, at))


def test_kind_late_by_two_intervals_opens_a_warning_and_a_fresh_poll_resolves_it(
        monitor: Monitor, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    interval_s = monitor.settings.poll_intervals_s["rfis"]
    finish_poll(pool, "rfi", 7, NOW - timedelta(seconds=2.5 * interval_s))
    redis_client.set(keys.job_pending_key("rfi", 7), "1")
    result = monitor.step()
    assert open_alerts(pool) == {"sync-late:rfi:7": "warning"}
    assert result.raised == ["sync-late:rfi:7"]
    assert not redis_client.exists(keys.job_pending_key("rfi", 7)), "the retry clears the stuck job marker"
    finish_poll(pool, "rfi", 7, NOW - timedelta(seconds=10))
    assert monitor.step().resolved == ["sync-late:rfi:7"]
    assert open_alerts(pool) == {}


def test_kind_late_by_five_intervals_is_critical_and_both_resolve_when_synced(
        monitor: Monitor, pool: ConnectionPool) -> None:
    interval_s = monitor.settings.poll_intervals_s["projects"]
    finish_poll(pool, "project", None, NOW - timedelta(seconds=6 * interval_s))
    monitor.step()
    assert open_alerts(pool) == {"sync-late:project:0": "warning", "sync-stale:project:0": "critical"}
    finish_poll(pool, "project", None, NOW)
    monitor.step()
    assert open_alerts(pool) == {}


def test_an_open_condition_is_not_counted_again_on_every_pass(monitor: Monitor, pool: ConnectionPool) -> None:
    finish_poll(pool, "rfi", 7, NOW - timedelta(days=1))
    monitor.step()
    monitor.step()
    with pool.connection() as conn:
        assert conn.execute("SELECT occurrences FROM alerts WHERE alert_key = 'sync-stale:rfi:7'"
                            ).fetchone() == (1,)


@pytest.mark.parametrize("reason, alerted", [
    ("429 from GET /rest/v1.0/projects", True),
    ("server Remaining 2 of 100", True),
    ("connection error on GET /rest/v1.0/projects", False),
])
def test_rate_limit_exhausted_is_a_warning_while_the_shared_pause_lasts(
        monitor: Monitor, pool: ConnectionPool, redis_client: redis.Redis, reason: str,
        alerted: bool) -> None:
    seconds, micros = redis_client.time()
    redis_client.set(DEFAULT_KEYS.pause_until, (seconds + 30) * 1_000_000 + micros)
    redis_client.set(DEFAULT_KEYS.pause_reason, reason)
    monitor.step()
    assert open_alerts(pool) == ({"rate-limit-exhausted": "warning"} if alerted else {})
    redis_client.delete(DEFAULT_KEYS.pause_until, DEFAULT_KEYS.pause_reason)
    monitor.step()
    assert open_alerts(pool) == {}


def test_procore_5xx_circuit_alert_is_raised_and_resolved_with_the_breakers_key(
        monitor: Monitor, pool: ConnectionPool, redis_client: redis.Redis) -> None:
    redis_client.hset(DEFAULT_KEYS.circuit, "state", "open")
    monitor.step()
    assert open_alerts(pool) == {"procore-circuit-open": "critical"}
    redis_client.hset(DEFAULT_KEYS.circuit, "state", "closed")
    monitor.step()
    assert open_alerts(pool) == {}


def test_sync_conflict_is_an_info_alert_until_the_window_passes(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, box: Box) -> None:
    now = [NOW]
    monitor = Monitor(settings, redis_client, pool, disk_free_ratio=lambda: box.disk_free,
                      clock=lambda: now[0])
    with pool.connection() as conn:
        conn.execute("INSERT INTO sync_log (at, kind, procore_id, action, result) VALUES"
                     " (%s, 'rfi', 1, 'conflict', 'overwritten')", (NOW - timedelta(minutes=5),))
    monitor.step()
    assert open_alerts(pool) == {"sync-conflict": "info"}
    now[0] = NOW + timedelta(seconds=monitor.config.conflict_window_s)
    monitor.step()
    assert open_alerts(pool) == {}


def test_disk_below_the_minimum_free_share_is_critical_until_space_returns(
        monitor: Monitor, pool: ConnectionPool, box: Box) -> None:
    box.disk_free = 0.19
    monitor.step()
    assert open_alerts(pool) == {"disk-space-low": "critical"}
    box.disk_free = 0.21
    monitor.step()
    assert open_alerts(pool) == {}


def test_rejected_refresh_token_alert_stays_until_new_tokens_are_stored(
        monitor: Monitor, pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        conn.execute("INSERT INTO oauth_tokens (name, last_error) VALUES"
                     " ('default', 'reauthorization required: invalid_grant')")
    monitor.step()
    assert open_alerts(pool) == {"procore-auth-reauthorize": "critical"}
    with pool.connection() as conn:
        message = conn.execute("SELECT message FROM alerts").fetchone()[0]  # type: ignore[index]
        conn.execute("UPDATE oauth_tokens SET last_error = NULL, refresh_token = 'new'")
    assert "eva00 auth login" in message
    monitor.step()
    assert open_alerts(pool) == {}


def test_dead_letters_appearing_open_a_warning_that_clears_after_the_window(
        monitor: Monitor, pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        conn.execute("INSERT INTO dead_letters (stream, message_id, error, at) VALUES"
                     " ('eva00:pages', '1-0', 'boom', %s)", (NOW - timedelta(minutes=1),))
    monitor.step()
    assert open_alerts(pool) == {"dead-letters": "warning"}
    with pool.connection() as conn:
        conn.execute("UPDATE dead_letters SET at = %s", (NOW - timedelta(days=2),))
    monitor.step()
    assert open_alerts(pool) == {}


def test_mass_delete_guard_alert_resolves_only_after_a_later_clean_reconciliation(
        monitor: Monitor, pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        alerts.raise_alert(conn, "mass-delete:rfi:7", "critical", "would soft-delete 90 of 100")
        tripped_at = conn.execute("SELECT last_seen_at FROM alerts").fetchone()[0]  # type: ignore[index]
    finish_poll(pool, "rfi", 7, tripped_at, mode="reconcile")  # the tripping poll itself
    monitor.step()
    guards = {k: v for k, v in open_alerts(pool).items() if k.startswith("mass-delete:")}
    assert guards == {"mass-delete:rfi:7": "critical"}
    finish_poll(pool, "rfi", 7, tripped_at + timedelta(seconds=1), mode="reconcile")
    assert monitor.step().resolved == ["mass-delete:rfi:7"]


def test_supervisord_fatal_event_opens_an_alert_and_running_resolves_it(
        settings: Settings, pool: ConnectionPool) -> None:
    payload = "processname:fetcher-0 groupname:fetcher from_state:BACKOFF tries:3"
    with psycopg.connect(settings.effective_database_url) as conn:
        assert handle_event(conn, FATAL, payload) == "process-fatal:fetcher:fetcher-0"
    assert open_alerts(pool) == {"process-fatal:fetcher:fetcher-0": "critical"}
    with psycopg.connect(settings.effective_database_url) as conn:
        handle_event(conn, RUNNING, "processname:fetcher-0 groupname:fetcher from_state:STARTING pid:1")
    assert open_alerts(pool) == {}


def test_monitor_reconciles_fatal_processes_from_supervisord_state(
        monitor: Monitor, pool: ConnectionPool, box: Box) -> None:
    box.processes = [{"group": "differ", "name": "differ", "statename": "FATAL", "description": "Exited"}]
    monitor.step()
    assert open_alerts(pool) == {"process-fatal:differ:differ": "critical"}
    box.processes[0]["statename"] = "RUNNING"
    monitor.step()
    assert open_alerts(pool) == {}


def test_unreachable_supervisord_leaves_process_alerts_as_they_are(
        monitor: Monitor, pool: ConnectionPool, box: Box) -> None:
    box.processes = [{"group": "differ", "name": "differ", "statename": "FATAL"}]
    monitor.step()

    def unreachable() -> list[dict[str, Any]]:
        raise ConnectionRefusedError("no socket")

    monitor.processes = unreachable
    result = monitor.step()
    assert "process-fatal:" in result.unknown
    assert open_alerts(pool) == {"process-fatal:differ:differ": "critical"}
