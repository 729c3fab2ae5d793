"""``unavailable_tools``: the (project, kind) pairs whose tool Procore refuses in that project
(and, as ``available``, those it answered, so only a pair never answered is asked under a lock).

Companies switch tools off per project, and Procore then answers 403 (or 404) to every endpoint
of the tool there. Asking again on every poll, or for each of a daily log's date windows, spends
the rate limit on answers known in advance, so the first refusal marks the pair unavailable and
nothing asks for it again until ``next_check_at`` (one recheck interval later). The recheck is
claimed in the database before its request (``due`` moves ``next_check_at`` on), so concurrent
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


def gate(conn: psycopg.Connection[Any], kind: str, project_id: int, now_s: float,
         recheck_s: float, *, asks: bool = True) -> Gate:
    """Whether to ask Procore for this pair now. A pair whose recheck is due is claimed (its next
    check moved on by ``recheck_s``) and asked, by the claimant only. A pair never answered is
    asked under a transaction lock, so the fetchers handling its first jobs at once (a daily log's
    date windows) send one request, and the others then see its outcome. A job that only plans
    others (``asks`` False) claims and locks nothing: the jobs it plans do."""
    state = _state(conn, kind, project_id)
    if state is None and not asks:
        return Gate(None, record=False)
    if state is None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s), %s::int)", (f"tool:{kind}", project_id))
        state = _state(conn, kind, project_id)
        if state is None:
            return Gate(None, record=True)
    status, reason = state
    if status == ToolState.AVAILABLE:
        return Gate(None, record=False)
    if not asks:
        due = conn.execute("SELECT next_check_at <= to_timestamp(%s) FROM unavailable_tools"
                           " WHERE project_id = %s AND kind = %s", (now_s, project_id, kind)).fetchone()
        return Gate(None if due and due[0] else reason, record=False)
    claimed = conn.execute(
        "UPDATE unavailable_tools SET next_check_at = to_timestamp(%s) + make_interval(secs => %s)"
        " WHERE project_id = %s AND kind = %s AND status = 'unavailable'"
        " AND next_check_at <= to_timestamp(%s) RETURNING 1",
        (now_s, recheck_s, project_id, kind, now_s)).fetchone()
    if claimed:
        return Gate(None, record=True)
    # Another fetcher claimed the recheck first (this one waited for its row): its outcome counts.
    after = _state(conn, kind, project_id)
    if after is None or after[0] == ToolState.AVAILABLE:
        return Gate(None, record=False)
    return Gate(after[1], record=False)


def _state(conn: psycopg.Connection[Any], kind: str, project_id: int) -> tuple[str, str] | None:
    row = conn.execute("SELECT status, reason FROM unavailable_tools WHERE project_id = %s AND kind = %s",
                       (project_id, kind)).fetchone()
    return None if row is None else (str(row[0]), str(row[1] or ""))


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
