"""/metrics parses with the Prometheus text parser and carries the seed's series."""

from __future__ import annotations

import dataclasses

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from eva00.config import Settings
from eva00.ops.dashboard.app import DashboardApp
from eva00.ops.status import StatusReader
from eva00.runtime import db
from tests.integration.test_dashboard import base_url, pool, seed_stack  # noqa: F401 - fixtures


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_parse_and_count_requests_by_class_endpoint_and_status(base_url: str) -> None:  # noqa: F811
    answer = requests.get(base_url + "/metrics", timeout=10)
    assert answer.headers["Content-Type"].startswith("text/plain")
    values = samples(answer.text)
    endpoint = "/rest/v1.0/projects/{id}/rfis"
    ok = frozenset({("budget_class", "scheduled"), ("endpoint", endpoint), ("status", "200")})
    assert values[("eva00_procore_requests_total", ok)] == 2
    assert values[("eva00_procore_requests_total", ok - {("status", "200")} | {("status", "503")})] == 1
    hist = frozenset({("budget_class", "scheduled"), ("endpoint", endpoint)})
    assert values[("eva00_procore_request_duration_seconds_bucket", hist | {("le", "0.1")})] == 1
    assert values[("eva00_procore_request_duration_seconds_bucket", hist | {("le", "+Inf")})] == 3
    assert values[("eva00_procore_request_duration_seconds_sum", hist)] == pytest.approx(1.1)
    assert values[("eva00_limiter_wait_seconds_bucket",
                   frozenset({("budget_class", "webhook"), ("le", "0.5")}))] == 1
    assert values[("eva00_limiter_requests_last_minute", frozenset({("budget_class", "scheduled")}))] == 12
    lag = values[("eva00_poll_lag_seconds",
                  frozenset({("family", "submittals"), ("kind", "submittal"), ("project_id", "7")}))]
    assert 690 <= lag <= 800
    webhook = frozenset({("budget_class", "webhook")})
    assert values[("eva00_limiter_budget_requests_per_minute", webhook)] == 15
    assert values[("eva00_limiter_limit_requests_per_minute", frozenset())] == pytest.approx(94.8)
    assert values[("eva00_stream_length", frozenset({("stream", "eva00:pages"), ("group", "differs")}))] == 1
    assert values[("eva00_alerts_open", frozenset({("severity", "critical")}))] == 1
    assert values[("eva00_items_changed_last_24h", frozenset({("kind", "rfi"), ("action", "conflict")}))] == 1
    assert values[("eva00_dead_letters_total", frozenset())] == 1
    assert values[("eva00_procore_events_total", frozenset({("event", "pause_429")}))] == 1
    assert values[("eva00_source_up", frozenset({("source", "postgres")}))] == 1
    assert ("eva00_downloads", frozenset({("status", "pending")})) in values
    assert ("eva00_disk_free_ratio", frozenset()) in values


def test_metrics_still_parse_when_redis_is_down(settings: Settings) -> None:
    own_pool = db.make_pool(settings, max_size=1, name="test-metrics")
    try:
        dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
        app = DashboardApp(StatusReader(settings, dead, own_pool))
        body = b"".join(app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET"}, lambda *a: None))
        values = samples(body.decode())
        assert values[("eva00_source_up", frozenset({("source", "redis")}))] == 0
        assert values[("eva00_source_up", frozenset({("source", "postgres")}))] == 1
    finally:
        own_pool.close()



def test_the_limits_requests_are_measured_against_follow_the_settings_even_while_redis_is_down(
        settings: Settings) -> None:
    tight = dataclasses.replace(settings, budget_webhook_per_min=20, rate_window_max=30)
    own_pool = db.make_pool(tight, max_size=1, name="test-metrics")
    try:
        dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
        app = DashboardApp(StatusReader(tight, dead, own_pool))
        values = samples(b"".join(app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET"},
                                      lambda *a: None)).decode())
        budgets = {dict(labels)["budget_class"]: v for (name, labels), v in values.items()
                   if name == "eva00_limiter_budget_requests_per_minute"}
        assert budgets == {"scheduled": 60, "webhook": 20, "on_demand": 15}
        # min(refill 1.58/s x 60 = 94.8, the window cap of 30 per 60 s)
        assert values[("eva00_limiter_limit_requests_per_minute", frozenset())] == 30
    finally:
        own_pool.close()
