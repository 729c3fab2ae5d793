"""Deletes in the entity tables: soft, and only on evidence.

Nothing is hard-deleted: a delete sets ``is_deleted`` and ``deleted_at`` (the schema refuses DELETE
and TRUNCATE), and logs a ``soft_delete`` to sync_log. A record is deleted when a complete listing
did not show it, when a delete signal names it (both within the mass-delete guard), when Procore
confirms it gone, or when its parent is gone; a delete webhook only flags it ``delete_pending``
until a fetch confirms or refutes it.
Rows are locked (``FOR NO KEY UPDATE``) in key order, as records.py locks them, so a reconciliation
and a differ never deadlock. The caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from eva00.replica import synclog
from eva00.replica.scope import SCOPE, atomic, check_time, checked_table, scoped

# A reconciliation may always soft-delete this many rows, whatever their share: one RFI deleted in
# a project of three is ordinary work, not a sign of a broken enumeration.
MASS_DELETE_FLOOR = 1

# Kinds listed per parent record: (child kind, parent kind, the child's field naming its parent).
# A parent deleted upstream takes its children along (its listing answers 404 from then on).
CHILDREN: tuple[tuple[str, str, str], ...] = (("drawing", "drawing_area", "drawing_area_id"),)
# Spec-section revisions are listed one division at a time (divisions are no kind of the replica).
PARENT_FIELD = {**{child: field for child, _parent, field in CHILDREN},
                "spec_section_revision": "specification_section_division_id"}


@dataclass(frozen=True)
class DeleteResult:
    live: int  # rows of the kind and project not deleted before the call
    would_delete: int  # of those, rows the enumeration did not see
    deleted: int  # rows soft-deleted: would_delete, or only the corroborated ones when the guard tripped
    guard_tripped: bool
    held: int = 0  # rows the tripped guard flagged delete_pending instead, for a later listing to confirm


def soft_delete_missing(conn: psycopg.Connection[Any], kind: str, project_id: int | None,
                        seen_ids: Collection[int], *, max_ratio: float, at: datetime,
                        date_range: tuple[str, str] | None = None,
                        parent_id: int | None = None) -> DeleteResult:
    """Soft-delete the live rows a COMPLETE enumeration at server time ``at`` did not list.

    ``date_range`` (first, last day, inclusive) limits it to the rows whose ``date`` lies in the
    window the enumeration covered: daily logs are listed one date window at a time. ``parent_id``
    limits it to the children of one parent record (drawings are listed one drawing area at a time).

    Mass-delete guard: when more than ``max_ratio`` of the live rows would go, and more than
    MASS_DELETE_FLOOR of them, one listing is not trusted (an empty or truncated listing from
    Procore looks exactly like that): the refusal is logged and the rows are only flagged
    ``delete_pending``. A row missing while already pending from an earlier complete listing has
    two independent signals and is deleted, guard or not; so a single bad listing deletes nothing,
    and real deletes land one listing later instead of never. A flag raised by a delete webhook is
    no such signal (anyone holding the webhook secret can send one for every id): those rows count
    as unconfirmed here. A later fetch that sees a pending row alive clears the flag. Rows fetched at or after
    ``at`` were seen alive later than the listing and are never deleted by it.
    """
    table = checked_table(kind, project_id)
    check_time(at, "at")
    _check_ratio(max_ratio)
    # Daily logs carry ``date``; their headers only ``log_date`` (the spec's names).
    in_range = (" AND coalesce(payload->>'date', payload->>'log_date') BETWEEN %s AND %s"
                if date_range else "")
    range_args: tuple[Any, ...] = tuple(date_range) if date_range else ()
    if parent_id is not None:
        if kind not in PARENT_FIELD:
            raise ValueError(f"{kind} is not listed per parent")
        in_range += " AND payload->>%s = %s"
        range_args += (PARENT_FIELD[kind], str(parent_id))
    with atomic(conn):
        live_row = conn.execute(scoped(table, "SELECT count(*) FROM {table} WHERE " + SCOPE
                                       + " AND NOT is_deleted" + in_range),
                                (kind, project_id, *range_args)).fetchone()
        live = int(live_row[0]) if live_row else 0
        rows = conn.execute(scoped(
            table, "SELECT procore_id, delete_pending AND delete_pending_source IS NOT DISTINCT FROM"
            " 'listing' FROM {table} t WHERE " + SCOPE + " AND NOT is_deleted"
            + in_range + " AND fetched_at < %s AND NOT EXISTS (SELECT 1 FROM unnest(%b::bigint[]) AS s (id)"
            " WHERE s.id = t.procore_id) ORDER BY procore_id FOR NO KEY UPDATE"),
            (kind, project_id, *range_args, at, list(seen_ids))).fetchall()
        missing = [int(r[0]) for r in rows]
        corroborated = [int(r[0]) for r in rows if r[1]]
        unconfirmed = [int(r[0]) for r in rows if not r[1]]
        if len(unconfirmed) > max_ratio * live and len(unconfirmed) > MASS_DELETE_FLOOR:
            synclog.log_sync(conn, kind, project_id, "soft_delete", {
                "live": live, "would_delete": len(missing), "max_ratio": max_ratio, "at": at,
                "held_pending": len(unconfirmed), "corroborated": len(corroborated)},
                result="refused_mass_delete")
            held = _flag_delete_pending(conn, table, kind, project_id, unconfirmed,
                                        "missing_from_listing_over_guard")
            deleted = _soft_delete(conn, table, kind, project_id, corroborated, at,
                                   "missing_from_two_listings")
            return DeleteResult(live, len(missing), deleted, guard_tripped=True, held=held)
        deleted = _soft_delete(conn, table, kind, project_id, missing, at, "missing_from_listing")
    return DeleteResult(live, len(missing), deleted, guard_tripped=False)


def soft_delete_signalled(conn: psycopg.Connection[Any], kind: str, project_id: int | None,
                          signalled_ids: Collection[int], *, max_ratio: float, at: datetime) -> DeleteResult:
    """Soft-delete the live rows a delete signal observed at server time ``at`` names deleted: a
    recycle bin, an inactive list or deleted-only view (eva00/procore/deleted.py), or a deletion
    field on a listed record. Only a COMPLETE signal listing may be passed here.

    The mass-delete guard of ``soft_delete_missing`` holds here too: when a single signal names
    more than ``max_ratio`` of the live rows (and more than MASS_DELETE_FLOOR), the rows are only
    flagged ``delete_pending``; a row already pending from a listing (an earlier listing that
    missed it, or an earlier signal) has two independent signals and is deleted; a delete
    webhook's flag is not one. A reconciliation
    of the same poll (kinds listed whole) is such a second signal. Rows fetched after ``at`` were
    seen alive later and stay.
    """
    table = checked_table(kind, project_id)
    check_time(at, "at")
    _check_ratio(max_ratio)
    if not signalled_ids:
        return DeleteResult(0, 0, 0, guard_tripped=False)
    with atomic(conn):
        live_row = conn.execute(scoped(table, "SELECT count(*) FROM {table} WHERE " + SCOPE
                                       + " AND NOT is_deleted"), (kind, project_id)).fetchone()
        live = int(live_row[0]) if live_row else 0
        rows = conn.execute(scoped(
            # a delete webhook's flag is no second signal: anyone holding the secret can send one
            table, "SELECT procore_id, delete_pending AND delete_pending_source IS NOT DISTINCT FROM"
            " 'listing' FROM {table} WHERE " + SCOPE + " AND NOT is_deleted"
            " AND fetched_at <= %s AND procore_id = ANY(%b::bigint[]) ORDER BY procore_id FOR NO KEY UPDATE"),
            (kind, project_id, at, sorted(set(signalled_ids)))).fetchall()
        named = [int(r[0]) for r in rows]
        corroborated = [int(r[0]) for r in rows if r[1]]
        unconfirmed = [int(r[0]) for r in rows if not r[1]]
        if len(unconfirmed) > max_ratio * live and len(unconfirmed) > MASS_DELETE_FLOOR:
            synclog.log_sync(conn, kind, project_id, "soft_delete", {
                "live": live, "would_delete": len(named), "max_ratio": max_ratio, "at": at,
                "held_pending": len(unconfirmed), "corroborated": len(corroborated),
                "signal": "deleted_listing"}, result="refused_mass_delete")
            held = _flag_delete_pending(conn, table, kind, project_id, unconfirmed,
                                        "named_deleted_over_guard")
            deleted = _soft_delete(conn, table, kind, project_id, corroborated, at, "confirmed_deleted")
            return DeleteResult(live, len(named), deleted, guard_tripped=True, held=held)
        deleted = _soft_delete(conn, table, kind, project_id, named, at, "confirmed_deleted")
    return DeleteResult(live, len(named), deleted, guard_tripped=False)


def _check_ratio(max_ratio: float) -> None:
    if not 0.0 <= max_ratio <= 1.0:
        raise ValueError(f"max_ratio {max_ratio!r} is not between 0 and 1")


def _flag_delete_pending(conn: psycopg.Connection[Any], table: str, kind: str, project_id: int | None,
                         procore_ids: Sequence[int], reason: str) -> int:
    if not procore_ids:
        return 0
    rows = conn.execute(scoped(
        table, "UPDATE {table} SET delete_pending = true, delete_pending_source = 'listing' WHERE "
        + SCOPE + " AND procore_id = ANY(%b::bigint[]) AND NOT is_deleted AND (NOT delete_pending"
        " OR delete_pending_source IS DISTINCT FROM 'listing')"
        " RETURNING procore_id, payload_hash"), (kind, project_id, list(procore_ids))).fetchall()
    if rows:
        synclog.insert_log(conn, [(kind, int(procore_id), project_id, "delete_pending", "ok", str(digest),
                                   {"reason": reason})
                                  for procore_id, digest in rows])
    return len(rows)


def _soft_delete(conn: psycopg.Connection[Any], table: str, kind: str, project_id: int | None,
                 procore_ids: Sequence[int], at: datetime, reason: str) -> int:
    if not procore_ids:
        return 0
    rows = conn.execute(scoped(
        table, "UPDATE {table} SET is_deleted = true, deleted_at = %s, delete_pending = false,"
        " local_updated_at = now() WHERE " + SCOPE + " AND procore_id = ANY(%b::bigint[])"
        " AND NOT is_deleted RETURNING procore_id, payload_hash"),
        (at, kind, project_id, list(procore_ids))).fetchall()
    if rows:
        synclog.insert_log(conn, [(kind, int(procore_id), project_id, "soft_delete", "ok", str(digest),
                                   {"reason": reason, "at": at}) for procore_id, digest in rows])
    return len(rows)


def soft_delete_orphans(conn: psycopg.Connection[Any], parent_kind: str, project_id: int | None,
                        at: datetime) -> int:
    """Soft-delete the live children of parents this replica holds as deleted (they can no longer
    be listed, so nothing else would ever notice them gone). A restored parent's next listing
    brings them back. A child fetched in the same second as the parent's deletion (Date headers have
    one-second resolution) counts as fetched before it: neither time changes later, so sparing it
    would leave it live for ever, while a wrong delete is undone by the restored parent's listing.
    Returns how many were deleted."""
    deleted = 0
    for child_kind, parent, field in CHILDREN:
        if parent != parent_kind:
            continue
        child_table, parent_table = checked_table(child_kind, project_id), checked_table(parent, project_id)
        orphans = [int(r[0]) for r in conn.execute(sql.SQL(
            "SELECT c.procore_id FROM {child} c JOIN {parent} p ON p.kind = %s"
            " AND coalesce(p.project_id, 0) = coalesce(c.project_id, 0)"
            " AND p.procore_id = (c.payload->>{field})::bigint AND p.is_deleted"
            " WHERE c.kind = %s AND coalesce(c.project_id, 0) = coalesce(%s, 0) AND NOT c.is_deleted"
            " AND c.fetched_at <= p.deleted_at ORDER BY c.procore_id FOR NO KEY UPDATE OF c").format(
                child=sql.Identifier(child_table), parent=sql.Identifier(parent_table),
                field=sql.Literal(field)), (parent, child_kind, project_id)).fetchall()]
        deleted += _soft_delete(conn, child_table, child_kind, project_id, orphans, at, "parent_deleted")
    return deleted


def mark_deleted(conn: psycopg.Connection[Any], kind: str, project_id: int | None,
                 procore_id: int, at: datetime) -> bool:
    """A confirmed delete (recycle bin, 404 after a delete webhook) observed at server time ``at``.

    False if there is no live row, or a fetch after ``at`` found the record alive.
    """
    table = checked_table(kind, project_id)
    check_time(at, "at")
    locked = conn.execute(scoped(
        table, "SELECT procore_id FROM {table} WHERE " + SCOPE + " AND procore_id = %s"
        " AND NOT is_deleted AND fetched_at <= %s FOR NO KEY UPDATE"),
        (kind, project_id, procore_id, at)).fetchall()
    ids = [int(row[0]) for row in locked]
    return _soft_delete(conn, table, kind, project_id, ids, at, "confirmed_deleted") == 1


def mark_delete_pending(conn: psycopg.Connection[Any], kind: str, project_id: int | None,
                        procore_id: int) -> bool:
    """A delete webhook arrived: flag the live row until a fetch confirms or refutes it."""
    table = checked_table(kind, project_id)
    row = conn.execute(scoped(
        table, "UPDATE {table} SET delete_pending = true, delete_pending_source = 'webhook' WHERE "
        + SCOPE + " AND procore_id = %s AND NOT is_deleted AND NOT delete_pending RETURNING payload_hash"),
        (kind, project_id, procore_id)).fetchone()
    if row is None:
        return False
    synclog.log_sync(conn, kind, project_id, "delete_pending", None, procore_id=procore_id,
                     payload_hash=str(row[0]))
    return True
