"""webhook_events retention: finished events (enqueued, ignored, processed) received more than
EVA00_WEBHOOK_EVENTS_RETENTION_DAYS ago are deleted, in batches of one transaction each.

Events still `received` are never pruned: the intake's requeue owes them a job. The rows are the
listener's receipt log (payloads up to 64 KiB each), not replica data, so they are not archived;
a crash between batches only leaves the rest for the next run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

log = logging.getLogger(__name__)

_PRUNE_SQL = (
    "DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events"
    " WHERE received_at < %s AND status <> 'received' ORDER BY id LIMIT %s)")


def prune_webhook_events(conn: psycopg.Connection[Any], retention_days: int, *,
                         now: datetime | None = None, batch_rows: int = 5000) -> int:
    """Delete finished events older than the retention; returns how many rows went."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    pruned = 0
    while True:
        with conn.transaction():
            deleted = conn.execute(_PRUNE_SQL, (cutoff, batch_rows)).rowcount
        pruned += deleted
        if deleted < batch_rows:
            break
    if pruned:
        log.info("pruned %d webhook_events received before %s", pruned, cutoff.isoformat())
    return pruned
