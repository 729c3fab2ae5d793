"""``sync_cursors``: the server time up to which a kind (in a project) is known complete.

A cursor only ever moves forward: a late or redelivered poll that finished earlier cannot move it
back, so an incremental poll never skips what a later one has not covered yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from eva00.replica.scope import SCOPE, check_time, checked_table


def read_cursor(conn: psycopg.Connection[Any], kind: str, project_id: int | None) -> datetime | None:
    checked_table(kind, project_id)
    row = conn.execute("SELECT cursor_at FROM sync_cursors WHERE " + SCOPE,
                       (kind, project_id)).fetchone()
    return None if row is None else row[0]


def advance_cursor(conn: psycopg.Connection[Any], kind: str, project_id: int | None,
                   cursor_at: datetime) -> datetime:
    """Move the cursor to ``cursor_at`` unless it is already later; returns the cursor."""
    checked_table(kind, project_id)
    check_time(cursor_at, "cursor_at")
    row = conn.execute(
        "INSERT INTO sync_cursors (kind, project_id, cursor_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (kind, (coalesce(project_id, 0))) DO UPDATE"
        " SET cursor_at = greatest(sync_cursors.cursor_at, EXCLUDED.cursor_at), updated_at = now()"
        " RETURNING cursor_at", (kind, project_id, cursor_at)).fetchone()
    assert row is not None  # an upsert always returns its row
    return row[0]
