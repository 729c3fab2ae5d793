"""A supervisord event listener: a program going FATAL opens a critical alert, the same program
RUNNING again resolves it (keys `process-fatal:GROUP:NAME`, built by runtime/alerts.py's
fatal_finding and shared with the monitor, which also reconciles them from getAllProcessInfo in
case an event was missed).

Protocol (supervisord's eventlistener): write READY, read one header line and its payload, answer
RESULT 2 OK. An event whose alert could not be written (PostgreSQL down) is answered FAIL, so
supervisord buffers and sends it again: no FATAL is lost to an outage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import IO

import psycopg

from eva00.runtime import alerts
from eva00.runtime.alerts import fatal_finding

log = logging.getLogger(__name__)

FATAL = "PROCESS_STATE_FATAL"
RUNNING = "PROCESS_STATE_RUNNING"


def parse_tokens(line: str) -> dict[str, str]:
    """'a:1 b:x' -> {'a': '1', 'b': 'x'} (supervisord's header and payload header format)."""
    return dict(token.split(":", 1) for token in line.split() if ":" in token)


def handle_event(conn: psycopg.Connection, event: str, payload: str) -> str | None:
    """Apply one event to the alerts table; returns the alert key it touched, if any."""
    head = parse_tokens(payload.split("\n", 1)[0])
    name = f"{head.get('groupname', head.get('processname', '?'))}:{head.get('processname', '?')}"
    if event == FATAL:
        finding = fatal_finding(name, f"from state {head.get('from_state', '?')}")
        alerts.raise_alert(conn, finding.key, finding.severity, finding.message, finding.details)
        return finding.key
    if event == RUNNING:
        key = fatal_finding(name).key
        if alerts.resolve_alert(conn, key):
            log.info("alert %s resolved: %s is running again", key, name)
        return key
    return None


def listen(stdin: IO[str], stdout: IO[str], connect: Callable[[], psycopg.Connection],
           *, max_events: int | None = None) -> int:
    """The listener loop; returns after ``max_events`` (tests) or at end of input."""
    handled = 0
    while max_events is None or handled < max_events:
        stdout.write("READY\n")
        stdout.flush()
        line = stdin.readline()
        if not line:
            return handled
        header = parse_tokens(line)
        payload = stdin.read(int(header.get("len", "0")))
        ok = _apply(connect, header.get("eventname", ""), payload)
        stdout.write("RESULT 2\nOK" if ok else "RESULT 4\nFAIL")
        stdout.flush()
        handled += 1
    return handled


def _apply(connect: Callable[[], psycopg.Connection], event: str, payload: str) -> bool:
    if event not in (FATAL, RUNNING):
        return True
    try:
        with connect() as conn:
            handle_event(conn, event, payload)
        return True
    except psycopg.Error as exc:
        log.warning("supervisor event %s not recorded (supervisord will resend it): %s", event, exc)
        return False
