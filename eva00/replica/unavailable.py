"""``unavailable_tools``: the (project, kind) pairs whose tool Procore refuses in that project
(and, as ``available``, those it answered, so only a pair never answered is asked under a lock).

Companies switch tools off per project, and Procore then answers 403 (or 404) to every endpoint
of the tool there. Asking again on every poll, or for each of a daily log's date windows, spends
the rate limit on answers known in advance, so the first refusal marks the pair unavailable and
nothing asks for it again until ``next_check_at`` (one recheck interval later). The first ask and
the recheck are claimed by one fetcher (eva00/stages/fetcher.py, a Redis key), so concurrent
fetchers send one request, not one each. An answer to the recheck makes the pair available again;
another refusal keeps it unavailable for another interval.

States (``status``): (none) -> AVAILABLE at the pair's first answer, -> UNAVAILABLE at its first
refusal; UNAVAILABLE -> AVAILABLE when a recheck is answered; AVAILABLE -> UNAVAILABLE at the
next refusal. Rows are never deleted: they are the history of what was off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import psycopg


class ToolState(str, Enum):
    UNAVAILABLE = "unavailable"
    AVAILABLE = "available"


@dataclass(frozen=True)
class Unavailable:
    project_id: int
    kind: str
    reason: str
    http_status: int | None
    refusals: int
    first_refused_at: datetime | None
    last_checked_at: datetime
    next_check_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "kind": self.kind, "reason": self.reason,
                "http_status": self.http_status, "refusals": self.refusals,
                "first_refused_at": self.first_refused_at.isoformat() if self.first_refused_at else None,
                "last_checked_at": self.last_checked_at.isoformat(),
                "next_check_at": self.next_check_at.isoformat()}


@dataclass(frozen=True)
class Gate:
    """May the fetcher ask Procore for a pair now, and must it record the answer?"""

    reason: str | None  # not None: the pair is unavailable, do not ask
    record: bool  # no answer is known for the pair, or its recheck is ours: record the outcome


@dataclass(frozen=True)
class Seen:
    """What the table says of a pair."""

    status: ToolState
    reason: str
    due: bool  # unavailable and its recheck is due
    next_check_s: float  # epoch seconds of the recheck (names which recheck a claim is for)


def peek(conn: psycopg.Connection[Any], kind: str, project_id: int, now_s: float) -> Seen | None:
    """The pair's state (None: never answered). Read-only: who asks Procore for an unknown or due
    pair is settled outside the database (the fetcher's claim), so no transaction is held open
    across the request."""
    row = conn.execute("SELECT status, reason, next_check_at <= to_timestamp(%s), extract(epoch FROM"
                       " next_check_at) FROM unavailable_tools WHERE project_id = %s AND kind = %s",
                       (now_s, project_id, kind)).fetchone()
    if row is None:
        return None
    status = ToolState(row[0])
    return Seen(status, str(row[1] or ""), status == ToolState.UNAVAILABLE and bool(row[2]), float(row[3]))


def record_refusal(conn: psycopg.Connection[Any], kind: str, project_id: int, reason: str,
                   http_status: int | None, now_s: float, recheck_s: float) -> None:
    """The pair's tool refused a request: unavailable until the next check (counted, the first
    refusal of this spell kept)."""
    conn.execute(
        "INSERT INTO unavailable_tools (project_id, kind, reason, http_status, first_refused_at,"
        " last_checked_at, next_check_at) VALUES (%s, %s, %s, %s, to_timestamp(%s), to_timestamp(%s),"
        " to_timestamp(%s) + make_interval(secs => %s))"
        " ON CONFLICT (project_id, kind) DO UPDATE SET reason = EXCLUDED.reason,"
        " http_status = EXCLUDED.http_status, last_checked_at = EXCLUDED.last_checked_at,"
        " next_check_at = EXCLUDED.next_check_at, available_since = NULL,"
        " refusals = CASE WHEN unavailable_tools.status = 'unavailable'"
        " THEN unavailable_tools.refusals + 1 ELSE 1 END,"
        " first_refused_at = CASE WHEN unavailable_tools.status = 'unavailable'"
        " THEN unavailable_tools.first_refused_at ELSE EXCLUDED.first_refused_at END,"
        " status = 'unavailable'",
        (project_id, kind, reason[:500], http_status, now_s, now_s, now_s, recheck_s))


def mark_available(conn: psycopg.Connection[Any], kind: str, project_id: int, now_s: float) -> bool:
    """Procore answered for the pair: available (True if it was unavailable until now)."""
    row = conn.execute(
        "INSERT INTO unavailable_tools (project_id, kind, status, last_checked_at, next_check_at,"
        " available_since) VALUES (%s, %s, 'available', to_timestamp(%s), to_timestamp(%s),"
        " to_timestamp(%s)) ON CONFLICT (project_id, kind) DO UPDATE SET status = 'available',"
        " available_since = EXCLUDED.available_since, last_checked_at = EXCLUDED.last_checked_at"
        " WHERE unavailable_tools.status = 'unavailable' RETURNING first_refused_at",
        (project_id, kind, now_s, now_s, now_s)).fetchone()
    return row is not None and row[0] is not None


def project_answered_since(conn: psycopg.Connection[Any], project_id: int, since_s: float) -> bool:
    """Was a tool of this project found switched off since then? Each such finding saw the
    project itself answer, so a fetcher need not look again (nor its peers)."""
    row = conn.execute("SELECT 1 FROM unavailable_tools WHERE project_id = %s AND status = 'unavailable'"
                       " AND last_checked_at >= to_timestamp(%s) LIMIT 1", (project_id, since_s)).fetchone()
    return row is not None


def waiting(conn: psycopg.Connection[Any], now_s: float) -> set[tuple[str, int]]:
    """(kind, project) pairs unavailable and not due for a check: the scheduler skips them."""
    rows = conn.execute("SELECT kind, project_id FROM unavailable_tools WHERE status = 'unavailable'"
                        " AND next_check_at > to_timestamp(%s)", (now_s,)).fetchall()
    return {(str(kind), int(project)) for kind, project in rows}


def listing(conn: psycopg.Connection[Any], project_ids: list[int] | None = None) -> list[Unavailable]:
    """Every pair unavailable now (of these projects), by kind then project."""
    rows = conn.execute(
        "SELECT project_id, kind, reason, http_status, refusals, first_refused_at, last_checked_at,"
        " next_check_at FROM unavailable_tools WHERE status = 'unavailable'"
        " AND (%s::bigint[] IS NULL OR project_id = ANY(%s::bigint[])) ORDER BY kind, project_id",
        (project_ids, project_ids)).fetchall()
    return [Unavailable(int(r[0]), str(r[1]), str(r[2]), r[3], int(r[4]), r[5], r[6], r[7]) for r in rows]
