"""Alerts: rows in `alerts` (open -> acknowledged -> resolved), deduplicated while open.

In runtime because every kind of process raises them (stages, the Procore client, the webhook
listener, the supervisord listener); delivering them to people is ops/notify.py's job.

Raising is part of the caller's transaction, so an alert exists exactly when the condition was
committed; delivery to sinks (log, email, webhook) happens later from the table, so a crash can
delay a notification but never lose it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
import psycopg

log = logging.getLogger(__name__)


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def raise_alert(conn: psycopg.Connection, key: str, severity: str, message: str,
                details: dict[str, Any] | None = None) -> bool:
    """Open the alert or, if it is open already, count one more occurrence. True if new."""
    Severity(severity)
    row = conn.execute(
        "INSERT INTO alerts (alert_key, severity, message, details, status, opened_at, last_seen_at,"
        " occurrences) VALUES (%s, %s, %s, %s, 'open', now(), now(), 1)"
        " ON CONFLICT (alert_key) WHERE status <> 'resolved' DO UPDATE SET"
        " last_seen_at = now(), occurrences = alerts.occurrences + 1, message = EXCLUDED.message,"
        " details = EXCLUDED.details RETURNING (xmax = 0)",
        (key, severity, message, orjson.dumps(details or {}).decode())).fetchone()
    created = bool(row and row[0])
    if created:
        log.log(logging.CRITICAL if severity == "critical" else logging.WARNING,
                "alert %s (%s): %s", key, severity, message)
    return created


def resolve_alert(conn: psycopg.Connection, key: str) -> bool:
    row = conn.execute(
        "UPDATE alerts SET status = 'resolved', resolved_at = now() WHERE alert_key = %s"
        " AND status <> 'resolved' RETURNING id", (key,)).fetchone()
    return row is not None


@dataclass(frozen=True)
class Finding:
    """One alert condition as found: what raise_alert is called with."""

    key: str
    severity: str
    message: str
    details: dict[str, Any]


def fatal_finding(name: str, description: str = "") -> Finding:
    """A program supervisord gave up on (`process-fatal:GROUP:NAME`): raised by the event listener
    from the FATAL event and by the monitor from supervisord's process list, one key for both."""
    return Finding(f"process-fatal:{name}", "critical",
                   f"supervisord gave up on {name} (FATAL: it exited during start-up too often)."
                   f" Read var/log/{name.split(':')[-1]}.log, fix the cause, then"
                   f" `supervisorctl start {name}`.", {"process": name, "description": description})
