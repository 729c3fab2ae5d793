"""The poll bookkeeping: ``poll_pages``, ``reconcile_seen`` and ``list_hashes``.

A poll is many pages, fetched and committed one message at a time, possibly by several differs at
once and possibly more than once (a redelivery). ``poll_pages`` holds one row per committed page,
so a redelivered page is recognised and the poll is known finished exactly once: when its last
page's row exists and every page's row does. ``reconcile_seen`` collects the ids a complete
listing saw across its pages until the last one commits, so what it did not see can be
soft-deleted. ``list_hashes`` remembers each show-backed record's list entry, so the fetcher calls
the show endpoint only for entries that changed. The caller owns the transaction: nothing here
commits, and the advisory lock taken by ``finish_if_complete`` lasts until the caller's COMMIT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import xxhash


@dataclass(frozen=True)
class FinishedPoll:
    """The poll's last page as committed: what the transaction that finished it acts on."""

    pages_total: int
    complete: bool  # the enumeration was whole: only then may a cursor move or anything be deleted
    window_to: datetime | None  # the cursor target the fetcher chose from the server's clock


def record_page(conn: psycopg.Connection[Any], poll_id: str, page: int, *, kind: str,
                project_id: int | None, mode: str, is_last: bool, pages_total: int | None,
                complete: bool, window_to: str | None, run_id: str, items: int) -> bool:
    """The page's checkpoint, in the transaction that applies the page: False if the page was
    already committed (a redelivery), so its effects are not counted twice."""
    row = conn.execute(
        "INSERT INTO poll_pages (poll_id, page, kind, project_id, mode, is_last, pages_total,"
        " complete, window_to, run_id, items) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (poll_id, page) DO NOTHING RETURNING 1",
        (poll_id, page, kind, project_id, mode, is_last, pages_total, complete, window_to, run_id,
         items)).fetchone()
    return row is not None


def finish_if_complete(conn: psycopg.Connection[Any], poll_id: str) -> FinishedPoll | None:
    """Mark the poll finished if every one of its pages has committed, seen from this transaction;
    the poll's last page if this transaction finished it, else None (pages still missing, or an
    earlier delivery finished it). Only the transaction that finishes a poll may move its cursor
    or reconcile its deletes, so that happens once per poll however its pages were delivered."""
    # Pages of one poll may be committed by several differs at once: serialise the check.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(poll_id),))
    last = conn.execute(
        "SELECT pages_total, complete, window_to FROM poll_pages WHERE poll_id = %s AND is_last",
        (poll_id,)).fetchone()
    if last is None:
        return None
    pages_total, complete, window_to = last
    done = conn.execute("SELECT count(*) FROM poll_pages WHERE poll_id = %s", (poll_id,)).fetchone()
    if done is None or done[0] != pages_total:
        return None
    if conn.execute("UPDATE poll_pages SET finished_at = now() WHERE poll_id = %s AND is_last"
                    " AND finished_at IS NULL RETURNING 1", (poll_id,)).fetchone() is None:
        return None  # finished by an earlier delivery (the pending marker: PendingMarkers)
    return FinishedPoll(pages_total, complete, window_to)


def finished_in_this_transaction(conn: psycopg.Connection[Any], poll_id: str) -> bool:
    """Whether the caller's own transaction finished the poll, so that only that delivery (not a
    later redelivery of one of its pages) releases what waited for the poll. ``finished_at`` is
    set to ``now()``, the transaction's start time: equal only within that very transaction."""
    row = conn.execute("SELECT 1 FROM poll_pages WHERE poll_id = %s AND is_last"
                       " AND finished_at = now()", (poll_id,)).fetchone()
    return row is not None


def has_finished_poll(conn: psycopg.Connection[Any], kind: str, project_id: int | None) -> bool:
    """Whether any poll of the kind in the project has finished: a parent kind with no stored rows
    was then listed and has none, rather than not listed yet."""
    return conn.execute(
        "SELECT 1 FROM poll_pages WHERE kind = %s AND project_id = %s AND finished_at IS NOT NULL"
        " LIMIT 1", (kind, project_id)).fetchone() is not None


def remember_seen(conn: psycopg.Connection[Any], poll_id: str, procore_ids: Sequence[int]) -> None:
    """Add a page's ids to what its complete listing saw; a redelivered page adds nothing new."""
    conn.cursor().executemany(
        "INSERT INTO reconcile_seen (poll_id, procore_id) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING", [(poll_id, i) for i in procore_ids])


def seen_ids(conn: psycopg.Connection[Any], poll_id: str) -> list[int]:
    """Every id the poll's pages listed: what a finished complete listing did not see is gone."""
    return [int(r[0]) for r in conn.execute(
        "SELECT procore_id FROM reconcile_seen WHERE poll_id = %s", (poll_id,))]


def prune_seen_ids(conn: psycopg.Connection[Any]) -> int:
    """Drop the ids of reconciliations finished over a day ago (they are read only while their
    poll finishes); returns how many rows went."""
    return conn.execute(
        "DELETE FROM reconcile_seen WHERE poll_id IN (SELECT poll_id FROM poll_pages"
        " WHERE is_last AND finished_at < now() - interval '1 day')").rowcount


def remember_list_hashes(conn: psycopg.Connection[Any], kind: str, project_id: int | None,
                         hashes: Mapping[str, str]) -> None:
    """Store the list entries' hashes (procore id as text -> hash), in the transaction that stores
    the records they came with: a show answer and the list entry it came from agree."""
    conn.cursor().executemany(
        "INSERT INTO list_hashes (kind, procore_id, project_id, list_hash) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (kind, procore_id, (coalesce(project_id, 0))) DO UPDATE SET"
        " list_hash = EXCLUDED.list_hash, updated_at = now()",
        [(kind, int(i), project_id, h) for i, h in hashes.items()])


def stored_list_hashes(conn: psycopg.Connection[Any], kind: str, project_id: int | None,
                       procore_ids: Sequence[int]) -> dict[str, str]:
    """The stored list hash of those records that have one (procore id as text -> hash): an entry
    whose hash is unchanged needs no show call."""
    return dict(conn.execute(
        "SELECT procore_id::text, list_hash FROM list_hashes WHERE kind = %s"
        " AND coalesce(project_id, 0) = coalesce(%s, 0) AND procore_id = ANY(%s)",
        (kind, project_id, list(procore_ids))).fetchall())


def polls_finished_since(conn: psycopg.Connection[Any], since_epoch: float,
                         kinds: Sequence[str]) -> set[tuple[str, int]]:
    """The (kind, project id or 0) of those kinds with a poll finished at or after ``since_epoch``
    (seconds): PostgreSQL, not Redis, says when a requested refresh is committed."""
    rows = conn.execute(
        "SELECT DISTINCT kind, coalesce(project_id, 0) FROM poll_pages"
        " WHERE finished_at >= to_timestamp(%s) AND kind = ANY(%s)",
        (since_epoch, list(kinds))).fetchall()
    return {(kind, project) for kind, project in rows}


def _lock_key(poll_id: str) -> int:
    return xxhash.xxh64_intdigest(poll_id.encode()) & 0x7FFF_FFFF_FFFF_FFFF


def recent_polls(conn: psycopg.Connection[Any], kinds: Sequence[str], project_id: int | None,
                 limit: int = 10) -> list[dict[str, Any]]:
    """The latest polls of ``kinds`` in one project (None: company level), newest first: one row
    per poll with its pages, items, whether it finished complete and when it started and ended."""
    cols = ("poll_id", "kind", "mode", "run_id", "pages", "items", "finished", "complete",
            "started_at", "finished_at")
    rows = conn.execute(
        "SELECT poll_id, min(kind), min(mode), min(run_id), count(*), sum(items),"
        " bool_or(is_last AND finished_at IS NOT NULL), bool_or(is_last AND complete),"
        " min(committed_at), max(finished_at) FROM poll_pages"
        " WHERE kind = ANY(%s) AND coalesce(project_id, 0) = %s"
        " GROUP BY poll_id ORDER BY max(committed_at) DESC LIMIT %s",
        (list(kinds), project_id or 0, limit)).fetchall()
    return [dict(zip(cols, row, strict=True)) for row in rows]
