"""Alert notifications are delivered from the table: every sink at least once, a failing sink
retried alone, nothing lost to a crash between steps."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.ops.notify import (
    EmailSink,
    LogSink,
    Notice,
    Notifier,
    NotifyConfig,
    WebhookSink,
    build_sinks,
)
from eva00.runtime import alerts, db


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    pool = db.make_pool(settings, max_size=2, name="test-notify")
    yield pool
    pool.close()


class Recorder:
    def __init__(self, name: str, min_severity: str = "info", failures: int = 0) -> None:
        self.name, self.min_severity, self.failures = name, min_severity, failures
        self.sent: list[tuple[str, str]] = []

    def send(self, notice: Notice) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("sink down")
        self.sent.append((notice.key, notice.event))


def test_a_failing_sink_is_retried_alone_and_the_others_are_not_sent_twice(pool: ConnectionPool) -> None:
    good, flaky = Recorder("good"), Recorder("flaky", failures=1)
    notifier = Notifier(pool, [good, flaky])
    with pool.connection() as conn:
        alerts.raise_alert(conn, "disk-space-low", "critical", "disk full")
    assert notifier.deliver_pending() == 0
    assert notifier.deliver_pending() == 1
    assert good.sent == [("disk-space-low", "opened")]
    assert flaky.sent == [("disk-space-low", "opened")]
    assert notifier.deliver_pending() == 0


def test_resolution_is_notified_after_the_opening_even_if_both_happened_before_delivery(
        pool: ConnectionPool) -> None:
    sink = Recorder("s")
    with pool.connection() as conn:
        alerts.raise_alert(conn, "dead-letters", "warning", "2 dead letters")
        alerts.resolve_alert(conn, "dead-letters")
    assert Notifier(pool, [sink]).deliver_pending() == 2
    assert sink.sent == [("dead-letters", "opened"), ("dead-letters", "resolved")]


def test_a_crash_after_sending_before_recording_repeats_the_notice_rather_than_losing_it(
        pool: ConnectionPool) -> None:
    sink = Recorder("s")

    class Crash(Exception):
        pass

    notifier = Notifier(pool, [sink])

    def crash(notice: Notice, name: str) -> None:
        raise Crash

    notifier._record = crash  # type: ignore[method-assign,assignment]
    with pool.connection() as conn:
        alerts.raise_alert(conn, "sync-stale:rfi:1", "critical", "stale")
    with pytest.raises(Crash):
        notifier.deliver_pending()
    Notifier(pool, [sink]).deliver_pending()  # the restarted monitor
    assert sink.sent == [("sync-stale:rfi:1", "opened")] * 2


def test_sinks_below_their_minimum_severity_are_skipped(pool: ConnectionPool) -> None:
    email = Recorder("email", min_severity="warning")
    with pool.connection() as conn:
        alerts.raise_alert(conn, "sync-conflict", "info", "1 conflict")
    assert Notifier(pool, [email]).deliver_pending() == 1
    assert email.sent == []


def test_webhook_sink_posts_slack_compatible_json() -> None:
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        WebhookSink(f"http://127.0.0.1:{server.server_port}/hook").send(
            Notice(3, "resolved", "procore-circuit-open", "critical", "5xx", {}))
    finally:
        server.shutdown()
        server.server_close()
    assert bodies[0]["text"] == "[eva00 RESOLVED] procore-circuit-open: 5xx"
    assert bodies[0]["eva00"]["event"] == "resolved"


def test_sinks_are_built_from_the_environment() -> None:
    config = NotifyConfig.from_env({"EVA00_ALERT_SMTP_HOST": "mail", "EVA00_ALERT_EMAIL_TO": "a@x, b@x",
                                    "EVA00_ALERT_WEBHOOK_URL": "https://hooks.example/1"})
    sinks = build_sinks(config)
    assert [type(s) for s in sinks] == [LogSink, EmailSink, WebhookSink]
    assert config.smtp is not None and config.smtp.recipients == ("a@x", "b@x")
    assert [type(s) for s in build_sinks(NotifyConfig.from_env({}))] == [LogSink]
