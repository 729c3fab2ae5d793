"""The supervisord event listener's protocol: READY, one event, RESULT; FAIL when the alert could
not be written, so supervisord resends the event."""

from __future__ import annotations

import io
from typing import Any

import psycopg

from eva00.runtime.alerts import fatal_finding
from eva00.stages.supervisor_listener import listen, parse_tokens


def event(name: str, payload: str) -> str:
    return (f"ver:3.0 server:supervisor serial:1 pool:listener poolserial:1 eventname:{name}"
            f" len:{len(payload)}\n{payload}")


def test_tokens_parse_like_supervisord_writes_them() -> None:
    assert parse_tokens("processname:fetcher-0 groupname:fetcher from_state:BACKOFF") == {
        "processname": "fetcher-0", "groupname": "fetcher", "from_state": "BACKOFF"}


def test_unrelated_events_are_acknowledged_without_touching_the_database() -> None:
    stdout = io.StringIO()

    def connect() -> Any:
        raise AssertionError("no database needed")

    handled = listen(io.StringIO(event("TICK_60", "when:1")), stdout, connect)
    assert handled == 1
    assert stdout.getvalue() == "READY\nRESULT 2\nOKREADY\n"


def test_a_fatal_event_that_cannot_be_recorded_is_answered_fail_for_a_resend() -> None:
    stdout = io.StringIO()

    def connect() -> Any:
        raise psycopg.OperationalError("database down")

    payload = "processname:differ groupname:differ from_state:BACKOFF"
    listen(io.StringIO(event("PROCESS_STATE_FATAL", payload)), stdout, connect, max_events=1)
    assert stdout.getvalue() == "READY\nRESULT 4\nFAIL"


def test_fatal_alert_names_the_process_and_how_to_restart_it() -> None:
    finding = fatal_finding("fetcher:fetcher-1")
    assert finding.key == "process-fatal:fetcher:fetcher-1" and finding.severity == "critical"
    assert "supervisorctl start fetcher:fetcher-1" in finding.message
