"""The dashboard app: page, /api/status and /metrics against real PostgreSQL and Redis; the server
binds 127.0.0.1 only."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
import redis
import requests
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.ops.dashboard.app import DashboardApp, make_dashboard_server, serve
from eva00.ops.status import StatusReader
from eva00.procore.keys import DEFAULT_KEYS
from eva00.procore.metrics import Metrics
from eva00.runtime import alerts, db


def seed_stack(database_url: str, client: redis.Redis) -> None:
    """Rows and Redis keys of a stack mid-sync: cursors, polls, alerts, calls, limiter state."""
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for kind, project, age_s in (("rfi", 7, 30), ("submittal", 7, 700), ("project", None, 20000),
                                     ("document", 8, 100)):
            at = now - timedelta(seconds=age_s)
            conn.execute("INSERT INTO poll_pages (poll_id, page, kind, project_id, mode, is_last, complete,"
                         " finished_at, items, run_id) VALUES (%s, 1, %s, %s, 'incremental', true, true,"
                         " %s, 5, 'run-1')", (f"p-{kind}", kind, project, at))
            conn.execute("INSERT INTO sync_cursors (kind, project_id, cursor_at, updated_at)"
                         " VALUES (%s, %s, %s, %s)", (kind, project, at, at))
        conn.execute("INSERT INTO fullsync_runs (run_id, phases) VALUES ('run-1', '{1,2,3,4}')")
        conn.execute("INSERT INTO fullsync_jobs (run_id, job_key, phase, kind, project_id, poll_id, job,"
                     " state, outcome, requests, total, listed) VALUES ('run-1', 'plan:rfi:7:0:0', 2, 'rfi',"
                     " 7, 'p-rfi', '{}', 'done', 'paged', 1, 5, 5)")
        conn.execute("INSERT INTO sync_log (kind, procore_id, action, result) VALUES"
                     " ('rfi', 1, 'update', 'ok'), ('rfi', 2, 'conflict', 'overwritten')")
        conn.execute("INSERT INTO sync_log (kind, project_id, action, result, detail) VALUES"
                     " ('submittal', 7, 'poll_incomplete', 'retry', '{\"reason\": \"count mismatch\"}')")
        conn.execute("INSERT INTO dead_letters (stream, message_id, error)"
                     " VALUES ('eva00:pages', '1-0', 'bad')")
        conn.execute("INSERT INTO projects (kind, procore_id, payload, payload_hash, fetched_at, source)"
                     " VALUES ('project', 7, '{\"id\": 7}', 'h', now(), 'api'),"
                     " ('project', 8, '{\"id\": 8}', 'h', now(), 'api')")
        conn.execute("INSERT INTO poll_plans (kind, project_id, seed_s, interval_s, next_poll_at) VALUES"
                     " ('rfi', 7, 300, 300, now()), ('document', 8, 300, 2400, now())")
        alerts.raise_alert(conn, "disk-space-low", "critical", "only 10% free")
        alerts.raise_alert(conn, "sync-late:submittal:7", "warning", "submittals are late")
        alerts.raise_alert(conn, "sync-late:submittal:8", "warning", "submittals are late")
    metrics = Metrics(client)
    for status, ms in ((200, 120.0), (200, 80.0), (503, 900.0)):
        metrics.record_call("scheduled", "/rest/v1.0/projects/{id}/rfis", status, ms)
    metrics.record_wait("webhook", 0.3)
    metrics.record_event("pause_429")
    seconds, micros = client.time()
    now_us = int(seconds) * 1_000_000 + int(micros)
    client.hset(DEFAULT_KEYS.rate_bucket, mapping={"tokens": 3, "ts_us": now_us})
    for i in range(12):
        client.zadd(DEFAULT_KEYS.rate_used("scheduled"), {f"s{i}": now_us - i * 1_000_000})
        client.zadd(DEFAULT_KEYS.rate_window, {f"s{i}": now_us - i * 1_000_000})
    client.zadd(DEFAULT_KEYS.rate_used("webhook"), {"w1": now_us})
    client.xadd(keys.STREAM_PAGES, {"v": "1"})
    client.xgroup_create(keys.file_stream(1), keys.GROUP_DOWNLOADERS, id="0", mkstream=True)
    client.set(keys.job_pending_key("rfi", 7), "1")


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    pool = db.make_pool(settings, max_size=2, name="test-dashboard")
    yield pool
    pool.close()


@pytest.fixture
def base_url(settings: Settings, redis_client: redis.Redis, pool: ConnectionPool) -> Iterator[str]:
    seed_stack(settings.effective_database_url, redis_client)
    server = make_dashboard_server(DashboardApp(StatusReader(settings, redis_client, pool)), 0)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(server, stop), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    stop.set()
    thread.join(5)


def test_status_json_reports_freshness_levels_limiter_and_alerts(base_url: str) -> None:
    status = requests.get(base_url + "/api/status", timeout=10).json()
    levels = {(f["kind"], f["project_id"]): f["level"] for f in status["freshness"]}
    assert levels == {("rfi", 7): "ok", ("submittal", 7): "late", ("project", None): "stale",
                      ("document", 8): "ok"}
    assert status["limiter"]["requests_last_min"] == {"scheduled": 12, "webhook": 1, "on_demand": 0}
    assert 3 <= status["limiter"]["bucket_tokens"] <= 10
    assert sorted(a["alert_key"] for a in status["alerts"]) == [
        "disk-space-low", "sync-late:submittal:7", "sync-late:submittal:8"]
    # the adaptive schedule per family: planned interval next to the seed's, share of the budget
    schedule = {r["family"]: r for r in status["schedule"]}
    assert set(schedule) == {"rfis", "documents"}
    assert schedule["documents"]["planned_interval_s"] == 2400 and schedule["documents"]["at_seed"] == 0
    assert schedule["rfis"]["requests_per_min"] == 0.2
    assert schedule["rfis"]["budget_share"] == round(0.2 / 60, 3)
    # the dashboard's alert table: one row per alert family, with its count and example projects
    assert [(g["alert_key"], g["count"]) for g in status["alert_groups"]] == [
        ("disk-space-low", 1), ("sync-late:submittal:*", 2)]
    assert "in 2 projects (" in status["alert_groups"][1]["message"]
    assert status["dead_letters"]["total"] == 1
    assert status["errors_24h"]["conflicts"] == 1
    assert status["pending"]["poll_jobs_pending"] == 1
    run = status["full_sync"][0]
    assert (run["run_id"], run["status"], run["current_phase"]) == ("run-1", "running", 2)
    assert (run["items"], run["requests"], run["floor"]) == (20, 1, 1)
    assert {(s["stream"], s["length"]) for s in status["streams"]} >= {("eva00:pages", 1)}
    assert status["errors"] == {}


def test_status_json_adds_one_summary_row_per_family_and_the_heat_map(base_url: str) -> None:
    status = requests.get(base_url + "/api/status", timeout=10).json()
    summary = {s["family"]: s for s in status["summary"]}
    assert (summary["submittals"]["late"], summary["submittals"]["worst"]["project_id"]) == (1, 7)
    assert (summary["projects"]["critical"], summary["rfis"]["ok"]) == (1, 1)
    assert summary["rfis"]["last_full_sync_at"] is not None and summary["meetings"]["pairs"] == 0
    cells = {(c["family"], c["project_id"]): c["level"] for c in status["heat"]}
    assert cells == {("projects", None): "stale", ("submittals", 7): "late", ("rfis", 7): "ok",
                     ("documents", 8): "ok"}


def test_a_pair_shows_its_polls_errors_and_next_planned_poll(base_url: str) -> None:
    pair = requests.get(base_url + "/api/pair?family=submittals&project=7", timeout=10).json()
    (kind,) = pair["kinds"]
    assert (kind["kind"], kind["level"], kind["overdue"]) == ("submittal", "late", True)
    assert kind["next_poll_at"] is not None and kind["cursor_at"] is not None
    assert [(p["poll_id"], p["items"], p["complete"]) for p in pair["polls"]] == [("p-submittal", 5, True)]
    assert [(e["action"], e["detail"]) for e in pair["errors"]] == [
        ("poll_incomplete", {"reason": "count mismatch"})]
    company = requests.get(base_url + "/api/pair?family=projects&project=0", timeout=10).json()
    assert [k["kind"] for k in company["kinds"]] == ["project"] and company["errors"] == []
    for bad in ("family=nope&project=7", "family=rfis&project=x", "family=rfis"):
        assert requests.get(f"{base_url}/api/pair?{bad}", timeout=10).status_code == 400


def test_page_and_its_assets_are_served_by_the_project(base_url: str) -> None:
    page = requests.get(base_url + "/", timeout=10)
    assert page.status_code == 200 and 'id="heatmap"' in page.text and "rate-chart" in page.text
    assert "http" not in page.text.replace('lang="en"', ""), "no external (CDN) references"
    for asset, kind in (("app.js", "javascript"), ("chart.js", "javascript"), ("heatmap.js", "javascript"),
                        ("style.css", "css")):
        answer = requests.get(f"{base_url}/static/{asset}", timeout=10)
        assert answer.status_code == 200 and kind in answer.headers["Content-Type"]
    assert requests.get(base_url + "/static/../app.py", timeout=10).status_code == 404


def test_the_dashboard_listens_on_loopback_only(settings: Settings, redis_client: redis.Redis,
                                                 pool: ConnectionPool) -> None:
    server = make_dashboard_server(DashboardApp(StatusReader(settings, redis_client, pool)), 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert server.socket.getsockname()[0] == "127.0.0.1"
        outward: str | None = socket.gethostbyname(socket.gethostname())
        if outward and outward.startswith("127."):
            outward = _non_loopback_address()
        if outward:
            with pytest.raises(OSError):
                socket.create_connection((outward, server.server_port), timeout=2).close()
    finally:
        server.server_close()


def test_a_request_naming_another_host_is_refused_as_dns_rebinding_would_send_it(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    app = DashboardApp(StatusReader(settings, redis_client, pool))
    server = make_dashboard_server(app, 0, hosts=["eva.example.com"])
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(server, stop), daemon=True)
    thread.start()
    url, port = f"http://127.0.0.1:{server.server_port}/api/status", server.server_port
    try:
        rebound = requests.get(url, headers={"Host": f"rebound.attacker.example:{port}"}, timeout=10)
        assert rebound.status_code == 421 and b"freshness" not in rebound.content
        assert requests.get(url, headers={"Host": f"localhost:{port}"}, timeout=10).status_code == 200
        assert requests.get(url, headers={"Host": "eva.example.com"}, timeout=10).status_code == 200
        assert requests.get(url, timeout=10).status_code == 200
    finally:
        stop.set()
        thread.join(5)


def _non_loopback_address() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent; it only picks the outward interface
        address = probe.getsockname()[0]
        return None if address.startswith("127.") else str(address)
    except OSError:
        return None
    finally:
        probe.close()


def test_a_redis_outage_shows_in_the_status_instead_of_failing_it(
        settings: Settings, pool: ConnectionPool) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    status = orjson.loads(StatusReader(settings, dead, pool).snapshot().to_json())
    assert "redis" in status["errors"] and "postgres" not in status["errors"]
    assert status["limiter"] is None


def test_eva00_status_json_prints_the_snapshot_and_fails_on_stale_kinds(
        settings: Settings, redis_client: redis.Redis, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from eva00.cli.status import main

    seed_stack(settings.effective_database_url, redis_client)
    assert main(["--json"], settings=settings) == 1  # the project kind is stale, an alert is critical
    status = orjson.loads(capsysbinary.readouterr().out)
    assert {f["level"] for f in status["freshness"]} == {"ok", "late", "stale"}
    assert "supervisord" in status["errors"]


def test_eva00_status_prints_families_first_and_pairs_on_request(
        settings: Settings, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from eva00.cli.status import main

    monkeypatch.setenv("COLUMNS", "220")
    seed_stack(settings.effective_database_url, redis_client)
    main([], settings=settings)
    text = capsys.readouterr().out
    assert "Freshness by family" in text and "submittal @ 7" in text
    assert "per kind and project" not in text
    main(["--family", "submittals"], settings=settings)
    assert "Freshness per kind and project (1 pairs)" in capsys.readouterr().out
    main(["--project", "8"], settings=settings)
    assert "document" in capsys.readouterr().out
    main(["--all"], settings=settings)
    assert "(4 pairs)" in capsys.readouterr().out


def test_a_long_lived_reader_recounts_the_families_at_most_once_per_counts_ttl(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    ticks = [1000.0]
    reader = StatusReader(settings, redis_client, pool, counts_ttl_s=30.0, monotonic=lambda: ticks[0])
    assert reader.snapshot().family_counts["meetings"]["last_full_sync_at"] is None
    with psycopg.connect(settings.effective_database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO poll_pages (poll_id, page, kind, project_id, mode, is_last, complete,"
                     " finished_at, items, run_id) VALUES ('p-meeting', 1, 'meeting', 7, 'full', true, true,"
                     " now(), 3, 'run-2')")
    ticks[0] += 29.0
    assert reader.snapshot().family_counts["meetings"]["last_full_sync_at"] is None  # counted 29 s ago
    ticks[0] += 1.0
    assert reader.snapshot().family_counts["meetings"]["last_full_sync_at"] is not None
