"""``sync_log``: what the sync did to which record, one row per change or notable event.

Not a legal record itself (ops/archive.py archives, then prunes it); every row written here has
direction 'in'. The caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import psycopg

# (kind, procore_id, project_id, action, result, payload_hash, detail)
LogEntry = tuple[str | None, int | None, int | None, str, str, str | None, Mapping[str, Any] | None]


def insert_log(conn: psycopg.Connection[Any], entries: Sequence[LogEntry]) -> None:
    """(kind, procore_id, project_id, action, result, payload_hash, detail) rows, direction in."""
    conn.execute(
        "INSERT INTO sync_log (kind, procore_id, project_id, action, result, payload_hash, detail)"
        " SELECT kind, procore_id, project_id, action, result, payload_hash, detail::jsonb"
        " FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::text[],"
        " %b::text[]) AS i (kind, procore_id, project_id, action, result, payload_hash, detail)",
        [list(column) for column in zip(*[(*entry[:6], _json(entry[6])) for entry in entries],
                                        strict=True)])


def log_sync(conn: psycopg.Connection[Any], kind: str | None, project_id: int | None, action: str,
             detail: Mapping[str, Any] | None = None, *, procore_id: int | None = None,
             result: str = "ok", payload_hash: str | None = None) -> None:
    """One sync_log row for an event that is not a record's outcome (e.g. an incomplete poll)."""
    insert_log(conn, [(kind, procore_id, project_id, action, result, payload_hash, detail)])


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


# The sync_log actions that are problems rather than changes (what `eva00 status` counts too).
ERROR_ACTIONS = ("poll_incomplete", "fetch_refused", "unreadable_answer", "error")


def recent_errors(conn: psycopg.Connection[Any], kinds: Sequence[str], project_id: int | None,
                  limit: int = 10) -> list[dict[str, Any]]:
    """The latest problem rows (ERROR_ACTIONS) of ``kinds`` in one project, newest first."""
    cols = ("at", "kind", "action", "result", "detail")
    rows = conn.execute(
        "SELECT at, kind, action, result, detail FROM sync_log"
        " WHERE kind = ANY(%s) AND coalesce(project_id, 0) = %s AND action = ANY(%s)"
        " ORDER BY at DESC LIMIT %s", (list(kinds), project_id or 0, list(ERROR_ACTIONS), limit)).fetchall()
    return [dict(zip(cols, row, strict=True)) for row in rows]
