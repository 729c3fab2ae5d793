"""``record_files`` and ``files``: which record field points at which file, where its download
stands, and the stored bytes by SHA-256.

A link is identified as the table's unique index says: (kind, procore_id, project_id, url_field,
procore_file_id, procore_version_id), the last two '' when Procore gives none. Its ``status`` is
a ``FileState``; the edges are commented on the enum and each function that moves one names it.
A ``files`` row is written only after its bytes are placed (replica/filestore.py) and in the same
transaction that marks the link downloaded, so a downloaded link always has its bytes. Neither
table is ever deleted from (schema.sql refuses it). The caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple, Protocol

import psycopg

from eva00.kinds import FileRef


class FileState(str, Enum):
    """A link's download state, the ``record_files.status`` column."""

    PENDING = "pending"  # PENDING -> DOWNLOADED (stored) | FAILED (attempts used up) | EXPIRED
    DOWNLOADED = "downloaded"  # final: a re-fetched record never re-arms a stored link
    FAILED = "failed"  # final until an operator re-arms it
    # PENDING -> EXPIRED: the signed URL ran out; EXPIRED -> PENDING when a re-fetched record
    # brings a new URL (its attempts start again from 0).
    EXPIRED = "expired"


class LinkIdentity(Protocol):
    """What names one link (a FileJob has these fields)."""

    @property
    def kind(self) -> str: ...
    @property
    def procore_id(self) -> int: ...
    @property
    def project_id(self) -> int | None: ...
    @property
    def url_field(self) -> str: ...
    @property
    def procore_file_id(self) -> str: ...
    @property
    def procore_version_id(self) -> str: ...


@dataclass(frozen=True)
class LinkRow:
    id: int
    status: str
    sha256: str | None
    attempts: int


class PendingLink(NamedTuple):
    """A pending link as a downloader job needs it."""

    kind: str
    procore_id: int
    project_id: int | None
    url_field: str
    procore_file_id: str
    procore_version_id: str
    source_url: str
    expected_size_bytes: int | None


class FileRow(NamedTuple):
    """A files row and whether its derived data (thumbnail, text) is done or given up on."""

    size_bytes: int
    content_type: str  # '' when unknown
    has_thumbnail: bool  # made, or the file is quarantined for thumbnails
    has_text: bool  # extracted, or the file is quarantined for text


_IDENTITY_CONFLICT = ("ON CONFLICT (kind, procore_id, (coalesce(project_id, 0)), url_field,"
                      " (coalesce(procore_file_id, '')), (coalesce(procore_version_id, '')))")
_IDENTITY_MATCH = ("kind = %s AND procore_id = %s AND coalesce(project_id, 0) = coalesce(%s, 0)"
                   " AND url_field = %s AND coalesce(procore_file_id, '') = %s"
                   " AND coalesce(procore_version_id, '') = %s")


# --- links found in records ---

def link_fetched(conn: psycopg.Connection[Any], kind: str, procore_id: int, project_id: int | None,
                 ref: FileRef) -> bool:
    """Record a link a fetched record carries; True when it is pending and wants a download job.

    A link already known keeps its state, except that a fresh URL re-arms one whose signed URL ran
    out (EXPIRED -> PENDING, attempts back to 0) and refreshes one still waiting (PENDING)."""
    row = conn.execute(
        "INSERT INTO record_files (kind, procore_id, project_id, url_field, procore_file_id,"
        " procore_version_id, source_url, expected_size_bytes) VALUES"
        " (%s, %s, %s, %s, %s, %s, %s, %s) " + _IDENTITY_CONFLICT
        + " DO UPDATE SET source_url = EXCLUDED.source_url, status = 'pending',"
        " attempts = CASE WHEN record_files.status = 'expired' THEN 0 ELSE record_files.attempts END,"
        " updated_at = now() WHERE record_files.status IN ('pending', 'expired')"
        " AND record_files.source_url IS DISTINCT FROM EXCLUDED.source_url RETURNING id",
        (kind, procore_id, project_id, ref.url_field, ref.file_id, ref.version_id, ref.url,
         ref.size_bytes)).fetchone()
    if row:
        return True
    status = conn.execute("SELECT status FROM record_files WHERE " + _IDENTITY_MATCH,
                          (kind, procore_id, project_id, ref.url_field, ref.file_id,
                           ref.version_id)).fetchone()
    return bool(status and status[0] == FileState.PENDING)


def link_imported(conn: psycopg.Connection[Any], kind: str, procore_id: int, project_id: int | None,
                  url_field: str, url: str, state: FileState, error: str | None) -> FileState | None:
    """Record a link read from an imported document as ``state`` (PENDING or EXPIRED, with the
    reason in ``error``); a link already downloaded stays DOWNLOADED. Returns the link's state."""
    row = conn.execute(
        "INSERT INTO record_files (kind, procore_id, project_id, url_field, procore_file_id,"
        " procore_version_id, source_url, status, last_error) VALUES"
        " (%s, %s, %s, %s, '', '', %s, %s, %s) " + _IDENTITY_CONFLICT + " DO UPDATE"
        " SET source_url = EXCLUDED.source_url, last_error = EXCLUDED.last_error, updated_at = now(),"
        " status = CASE WHEN record_files.status = 'downloaded' THEN record_files.status"
        " ELSE EXCLUDED.status END RETURNING status",
        (kind, procore_id, project_id, url_field, url, state.value, error)).fetchone()
    return FileState(row[0]) if row else None


# --- downloads ---

def lock_link(conn: psycopg.Connection[Any], link: LinkIdentity) -> LinkRow | None:
    """The link's row, locked for the whole download; None when unknown or another holds it."""
    found = conn.execute(
        "SELECT id, status, sha256, attempts FROM record_files WHERE " + _IDENTITY_MATCH
        + " FOR UPDATE SKIP LOCKED",
        (link.kind, link.procore_id, link.project_id, link.url_field, link.procore_file_id,
         link.procore_version_id)).fetchone()
    return LinkRow(*found) if found else None


def add_file(conn: psycopg.Connection[Any], sha256: str, size_bytes: int, content_type: str | None,
             storage_path: str) -> None:
    """The files row of bytes already placed at ``storage_path`` (relative to the data dir)."""
    conn.execute("INSERT INTO files (sha256, size_bytes, content_type, storage_path)"
                 " VALUES (%s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
                 (sha256, size_bytes, content_type, storage_path))


def mark_downloaded(conn: psycopg.Connection[Any], link_id: int, sha256: str) -> None:
    """PENDING -> DOWNLOADED, after add_file() in the same transaction."""
    conn.execute("UPDATE record_files SET status = 'downloaded', sha256 = %s, attempts = attempts + 1,"
                 " last_error = NULL, updated_at = now() WHERE id = %s", (sha256, link_id))


def record_attempt(conn: psycopg.Connection[Any], link_id: int, state: FileState, error: str) -> None:
    """An attempt that stored nothing: PENDING stays PENDING (a retry follows), or -> FAILED | EXPIRED."""
    conn.execute("UPDATE record_files SET status = %s, attempts = attempts + 1, last_error = %s,"
                 " updated_at = now() WHERE id = %s", (state.value, error[:2000], link_id))


def stored_file(conn: psycopg.Connection[Any], sha256: str) -> FileRow | None:
    found = conn.execute(
        "SELECT f.size_bytes, coalesce(f.content_type, ''),"
        " EXISTS (SELECT 1 FROM thumbnails t WHERE t.source_sha256 = f.sha256)"
        "  OR EXISTS (SELECT 1 FROM file_quarantine q WHERE q.sha256 = f.sha256 AND q.stage = 'thumbnails'),"
        " EXISTS (SELECT 1 FROM file_texts x WHERE x.sha256 = f.sha256)"
        "  OR EXISTS (SELECT 1 FROM file_quarantine q WHERE q.sha256 = f.sha256 AND q.stage = 'text')"
        " FROM files f WHERE f.sha256 = %s", (sha256,)).fetchone()
    return FileRow(*found) if found else None


# --- the reconciler's work list ---

def stale_pending(conn: psycopg.Connection[Any], older_than_s: float,
                  limit: int) -> list[tuple[int, tuple[Any, ...]]]:
    """Pending links untouched for ``older_than_s``, oldest first, locked (skipping those another
    reconciler holds): (id, (kind, procore_id, project_id, url_field, file_id, version_id))."""
    rows = conn.execute(
        "SELECT id, kind, procore_id, project_id, url_field, coalesce(procore_file_id, ''),"
        " coalesce(procore_version_id, '') FROM record_files WHERE status = 'pending'"
        " AND updated_at < now() - make_interval(secs => %s) ORDER BY id LIMIT %s"
        " FOR UPDATE SKIP LOCKED", (older_than_s, limit)).fetchall()
    return [(int(row[0]), tuple(row[1:])) for row in rows]


def touch_links(conn: psycopg.Connection[Any], link_ids: Collection[int]) -> list[PendingLink]:
    """Move the links' updated_at to now (so they are not requeued again for a while); their jobs."""
    if not link_ids:
        return []
    rows = conn.execute(
        "UPDATE record_files SET updated_at = now() WHERE id = ANY(%s)"
        " RETURNING kind, procore_id, project_id, url_field, coalesce(procore_file_id, ''),"
        " coalesce(procore_version_id, ''), coalesce(source_url, ''), expected_size_bytes",
        (list(link_ids),)).fetchall()
    return [PendingLink(*row) for row in rows]


# --- reports ---

def totals_by_state(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
    """State -> (links, bytes): stored size when downloaded, else the size the record announced."""
    return {str(status): (int(count), int(size)) for status, count, size in conn.execute(
        "SELECT rf.status, count(*), coalesce(sum(coalesce(f.size_bytes, rf.expected_size_bytes)), 0)"
        " FROM record_files rf LEFT JOIN files f ON f.sha256 = rf.sha256 GROUP BY 1")}


class KindProgress(NamedTuple):
    kind: str
    links: int
    downloaded: int
    pending: int
    api_links: int  # links whose URL goes through one of the API hosts (each costs a request)
    api_attempts: int
    size_bytes: int | None  # as the records announced it
    size_done_bytes: int | None


def progress_by_kind(conn: psycopg.Connection[Any], kinds: Sequence[str],
                     project_ids: Sequence[int] | None, api_hosts: Collection[str]) -> list[KindProgress]:
    """Links of ``kinds`` (in ``project_ids``, or all when None; company-level links always)."""
    through_api = [f"%://{host}/%" for host in sorted(api_hosts)] or ["-"]
    project_ids = list(project_ids) if project_ids is not None else None
    rows = conn.execute(
        "SELECT kind, count(*), count(*) FILTER (WHERE status = 'downloaded'),"
        " count(*) FILTER (WHERE status = 'pending'),"
        " count(*) FILTER (WHERE source_url LIKE ANY(%s)),"
        " coalesce(sum(attempts) FILTER (WHERE source_url LIKE ANY(%s)), 0),"
        " sum(expected_size_bytes), sum(expected_size_bytes) FILTER (WHERE status = 'downloaded')"
        " FROM record_files WHERE kind = ANY(%s)"
        " AND (%s::bigint[] IS NULL OR project_id IS NULL OR project_id = ANY(%s::bigint[]))"
        " GROUP BY kind", (through_api, through_api, list(kinds), project_ids, project_ids)).fetchall()
    return [KindProgress(*row) for row in rows]


def quarantine(conn: psycopg.Connection, sha256: str, stage: str, error: str) -> None:
    """A stored file a stage cannot read: recorded once per (file, stage), never retried."""
    conn.execute("INSERT INTO file_quarantine (sha256, stage, error) VALUES (%s, %s, %s)"
                 " ON CONFLICT (sha256, stage) DO UPDATE SET error = EXCLUDED.error",
                 (sha256, stage, error[:2000]))
