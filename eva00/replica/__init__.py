"""The replica's database core: fetched records in, rows, history, sync_log and cursors out.

Every write here keeps three promises. Nothing is hard-deleted (a delete sets ``is_deleted``).
Every distinct payload ever seen is in ``record_versions``: the schema's statement triggers copy
what the entity tables store, and this module adds the payloads a stale fetch brought, which
the tables never store. A row is never overwritten by a fetch older than the one that produced
it: ``fetched_at`` is Procore's own Date header, so our clock's skew does not matter.

Concurrent differs on the same rows are safe: existing rows are locked (``FOR NO KEY UPDATE``)
in key order before anything is decided, new rows are inserted ``ON CONFLICT DO NOTHING`` in the
same order, and a row another differ inserted meanwhile is then locked and decided like any
other. A second differ therefore decides on what the first committed, never on what it read
before. The caller owns the transaction: nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NamedTuple

import orjson
import psycopg
from psycopg import sql

from eva00.hashing import canonical_json, payload_hash
from eva00.kinds import COMPANY_LEVEL_KINDS, KIND_TABLE

SOURCES = frozenset({"api", "webhook", "pdf_import"})
# A reconciliation may always soft-delete this many rows, whatever their share: one RFI deleted in
# a project of three is ordinary work, not a sign of a broken enumeration.
MASS_DELETE_FLOOR = 1


class Outcome(str, Enum):
    """What one fetched record did to its row (the sync_log action is in ``_ACTIONS``)."""

    INSERTED = "inserted"  # no row yet
    UPDATED = "updated"  # a new payload from a fetch at least as recent as the stored one
    UNCHANGED = "unchanged"  # the payload is the one stored
    STALE = "stale"  # fetched before the stored payload was: the row is left alone
    RESTORED = "restored"  # the row was soft-deleted and the record is back
    CONFLICT_OVERWRITTEN = "conflict_overwritten"  # fresher fetch, older updated_at: Procore wins


_ACTIONS = {
    Outcome.INSERTED: ("insert", "ok"),
    Outcome.UPDATED: ("update", "ok"),
    Outcome.STALE: ("stale", "skipped"),
    Outcome.RESTORED: ("restore", "ok"),
    Outcome.CONFLICT_OVERWRITTEN: ("conflict", "overwritten"),
}
_REWRITES = frozenset({Outcome.UPDATED, Outcome.RESTORED, Outcome.CONFLICT_OVERWRITTEN})


@dataclass(frozen=True)
class FetchedRecord:
    kind: str
    procore_id: int
    project_id: int | None
    payload: Mapping[str, Any]
    fetched_at: datetime  # the server's Date of the fetch, timezone-aware
    source: str = "api"

    @property
    def procore_updated_at(self) -> datetime | None:
        return parse_procore_time(self.payload.get("updated_at"))


@dataclass(frozen=True)
class DeleteResult:
    live: int  # rows of the kind and project not deleted before the call
    would_delete: int  # of those, rows the enumeration did not see
    deleted: int  # rows soft-deleted: would_delete, or only the corroborated ones when the guard tripped
    guard_tripped: bool
    held: int = 0  # rows the tripped guard flagged delete_pending instead, for a later listing to confirm


def parse_procore_time(value: Any) -> datetime | None:
    """Procore's ISO 8601 timestamps ('...Z'); a value without an offset is taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"updated_at {value!r} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"updated_at {value!r} is not an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- validation: a bad record raises before anything is written ---

Key = tuple[str, int, int]  # (kind, procore_id, project_id or 0): the tables' identity index


class _Row(NamedTuple):
    position: int  # in the caller's sequence
    table: str
    key: Key
    record: FetchedRecord
    payload_json: str
    payload_hash: str
    procore_updated_at: datetime | None


def _check_scope(kind: str, project_id: int | None) -> str:
    """The kind's table, after checking that the project scope fits the kind."""
    if kind not in KIND_TABLE:
        raise ValueError(f"unknown kind {kind!r}")
    if kind in COMPANY_LEVEL_KINDS and project_id is not None:
        raise ValueError(f"{kind} is company-level: project_id must be None, not {project_id!r}")
    if kind not in COMPANY_LEVEL_KINDS and not _is_id(project_id):
        raise ValueError(f"{kind} belongs to a project: project_id {project_id!r} is not an id")
    return KIND_TABLE[kind]


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_time(value: Any, what: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, not {value!r}")


def _prepare(index: int, record: FetchedRecord) -> _Row:
    where = f"record {index} ({record.kind} {record.procore_id!r})"
    try:
        table = _check_scope(record.kind, record.project_id)
        if not isinstance(record.payload, Mapping):
            raise ValueError("payload is not a JSON object")
        if not _is_id(record.procore_id):
            raise ValueError("procore_id is not an integer")
        if "id" not in record.payload:
            raise ValueError("payload has no id")
        if record.payload["id"] != record.procore_id:
            raise ValueError(f"payload id {record.payload['id']!r} is not the record's id")
        if record.source not in SOURCES:
            raise ValueError(f"source {record.source!r} is not one of {sorted(SOURCES)}")
        _check_time(record.fetched_at, "fetched_at")
        canonical = canonical_json(record.payload)
        # jsonb cannot hold U+0000; refusing keeps the whole page for the dead letters.
        if b"\\u0000" in canonical:
            raise ValueError("payload contains U+0000, which PostgreSQL's jsonb cannot store")
        updated_at = record.procore_updated_at
    except (ValueError, TypeError) as exc:  # orjson raises TypeError subclasses
        raise ValueError(f"{where}: {exc}") from None
    key = (record.kind, record.procore_id, record.project_id or 0)
    return _Row(index, table, key, record, canonical.decode(), payload_hash(record.payload),
                updated_at)


# --- upserts ---

class _Stored(NamedTuple):
    payload_hash: str
    fetched_at: datetime
    procore_updated_at: datetime | None
    is_deleted: bool
    deleted_at: datetime | None
    delete_pending: bool


def _atomic(conn: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
    """The caller owns the transaction (the stage commits a whole message at once); only an
    autocommit connection gets one here, so several statements never half-apply."""
    return conn.transaction() if conn.autocommit else nullcontext()


def upsert_records(conn: psycopg.Connection[Any], records: Sequence[FetchedRecord]) -> list[Outcome]:
    """Apply fetched records; one Outcome per record, in order. Idempotent."""
    rows = [_prepare(index, record) for index, record in enumerate(records)]
    by_table: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_table[row.table].append(row)
    outcomes: dict[int, Outcome] = {}
    with _atomic(conn):
        for table in sorted(by_table):  # one lock order for every differ
            for batch in _rounds(by_table[table]):
                outcomes.update(_upsert_round(conn, table, batch))
    return [outcomes[index] for index in range(len(rows))]


def _rounds(rows: Sequence[_Row]) -> list[list[_Row]]:
    """Batches with each key at most once (one statement cannot touch a row twice), key order."""
    rounds: list[list[_Row]] = []
    occurrences: dict[Key, int] = defaultdict(int)
    for row in rows:
        seen = occurrences[row.key]
        occurrences[row.key] += 1
        if seen == len(rounds):
            rounds.append([])
        rounds[seen].append(row)
    return [sorted(batch, key=lambda row: row.key) for batch in rounds]


def _upsert_round(conn: psycopg.Connection[Any], table: str, rows: list[_Row]) -> dict[int, Outcome]:
    stored, inserted = _lock_or_insert(conn, table, rows)
    outcomes = {row.position: Outcome.INSERTED for row in rows if row.key in inserted}
    decided = [(row, stored[row.key], _decide(row, stored[row.key]))
               for row in rows if row.key not in inserted]
    outcomes.update((row.position, outcome) for row, _stored, outcome in decided)
    _write_decisions(conn, table, decided)
    _log_outcomes(conn, rows, outcomes, stored)
    return outcomes


def _lock_or_insert(conn: psycopg.Connection[Any], table: str,
                    rows: Sequence[_Row]) -> tuple[dict[Key, _Stored], set[Key]]:
    """Lock the rows that exist, insert the others: (locked rows, keys inserted)."""
    stored = _lock_existing(conn, table, [row.key for row in rows])
    inserted: set[Key] = set()
    missing = [row for row in rows if row.key not in stored]
    for _attempt in range(3):
        if not missing:
            return stored, inserted
        inserted |= _insert_new(conn, table, missing)
        # Keys another differ inserted meanwhile: ON CONFLICT waited for its commit, so a new
        # statement sees (and locks) its row.
        lost = [row.key for row in missing if row.key not in inserted]
        stored.update(_lock_existing(conn, table, lost))
        missing = [row for row in missing if row.key not in inserted and row.key not in stored]
    raise RuntimeError(f"{table}: a row neither insertable nor visible: {missing[0].key}")


def _decide(row: _Row, stored: _Stored) -> Outcome:
    """The outcome of a fetched payload against the locked stored row."""
    fetched_at, updated_at = row.record.fetched_at, row.procore_updated_at
    if stored.is_deleted:
        # A fetch from before the delete was established cannot bring the record back.
        if fetched_at < stored.fetched_at or (stored.deleted_at and fetched_at < stored.deleted_at):
            return Outcome.STALE
        return Outcome.RESTORED
    if row.payload_hash == stored.payload_hash:
        return Outcome.UNCHANGED
    if fetched_at < stored.fetched_at:
        return Outcome.STALE
    older = updated_at is not None and stored.procore_updated_at is not None \
        and updated_at < stored.procore_updated_at
    if older and fetched_at == stored.fetched_at:
        # Date has one-second resolution: on a tie the newer updated_at is the later truth.
        return Outcome.STALE
    return Outcome.CONFLICT_OVERWRITTEN if older else Outcome.UPDATED


_KEY_ARRAYS = "%b::text[], %b::bigint[], %b::bigint[]"
_KEY_MATCH = ("t.kind = i.kind AND t.procore_id = i.procore_id"
              " AND coalesce(t.project_id, 0) = coalesce(i.project_id, 0)")


def _key_columns(keys: Sequence[Key]) -> list[list[Any]]:
    return [[key[0] for key in keys], [key[1] for key in keys], [key[2] or None for key in keys]]


def _lock_existing(conn: psycopg.Connection[Any], table: str, keys: Sequence[Key]) -> dict[Key, _Stored]:
    if not keys:
        return {}
    query = sql.SQL(
        "SELECT t.kind, t.procore_id, coalesce(t.project_id, 0), t.payload_hash, t.fetched_at,"
        " t.procore_updated_at, t.is_deleted, t.deleted_at, t.delete_pending"
        " FROM {table} t JOIN unnest(" + _KEY_ARRAYS + ") AS i (kind, procore_id, project_id)"
        " ON " + _KEY_MATCH +
        " ORDER BY t.kind, t.procore_id, coalesce(t.project_id, 0) FOR NO KEY UPDATE OF t"
    ).format(table=sql.Identifier(table))
    rows = conn.execute(query, _key_columns(keys)).fetchall()
    return {(row[0], row[1], row[2]): _Stored(*row[3:]) for row in rows}


def _row_columns(rows: Sequence[_Row]) -> list[list[Any]]:
    return [*_key_columns([row.key for row in rows]),
            [row.payload_json for row in rows], [row.payload_hash for row in rows],
            [row.procore_updated_at for row in rows], [row.record.fetched_at for row in rows],
            [row.record.source for row in rows]]


_ROW_ARRAYS = ("unnest(%b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::text[],"
               " %b::timestamptz[], %b::timestamptz[], %b::text[]) AS i (kind, procore_id,"
               " project_id, payload, payload_hash, procore_updated_at, fetched_at, source)")


def _insert_new(conn: psycopg.Connection[Any], table: str, rows: Sequence[_Row]) -> set[Key]:
    query = sql.SQL(
        "INSERT INTO {table} (kind, procore_id, project_id, payload, payload_hash,"
        " procore_updated_at, fetched_at, source)"
        " SELECT i.kind, i.procore_id, i.project_id, i.payload::jsonb, i.payload_hash,"
        " i.procore_updated_at, i.fetched_at, i.source FROM " + _ROW_ARRAYS +
        " ON CONFLICT (kind, procore_id, (coalesce(project_id, 0))) DO NOTHING"
        " RETURNING kind, procore_id, coalesce(project_id, 0)"
    ).format(table=sql.Identifier(table))
    return {(r[0], r[1], r[2]) for r in conn.execute(query, _row_columns(rows)).fetchall()}


def _write_decisions(conn: psycopg.Connection[Any],
                     table: str, decided: Sequence[tuple[_Row, _Stored, Outcome]]) -> None:
    rewrite = [row for row, _old, outcome in decided if outcome in _REWRITES]
    # A newer fetch of the same payload still moves fetched_at, so an older fetch that arrives
    # later (a redelivered page) cannot overwrite it; and a fetch that finds the record answers
    # a pending delete webhook.
    touch = [row for row, old, outcome in decided if outcome is Outcome.UNCHANGED
             and (row.record.fetched_at > old.fetched_at or old.delete_pending)]
    stale = [row for row, old, outcome in decided if outcome is Outcome.STALE
             and row.payload_hash != old.payload_hash]
    if rewrite:
        conn.execute(sql.SQL(
            "UPDATE {table} t SET payload = i.payload::jsonb, payload_hash = i.payload_hash,"
            " procore_updated_at = i.procore_updated_at, fetched_at = i.fetched_at,"
            " source = i.source, local_updated_at = now(), is_deleted = false, deleted_at = NULL,"
            " delete_pending = false FROM " + _ROW_ARRAYS + " WHERE " + _KEY_MATCH
        ).format(table=sql.Identifier(table)), _row_columns(rewrite))
    if touch:
        conn.execute(sql.SQL(
            "UPDATE {table} t SET fetched_at = greatest(t.fetched_at, i.fetched_at),"
            " delete_pending = false FROM unnest(" + _KEY_ARRAYS + ", %b::timestamptz[])"
            " AS i (kind, procore_id, project_id, fetched_at) WHERE " + _KEY_MATCH
        ).format(table=sql.Identifier(table)),
            [*_key_columns([row.key for row in touch]), [row.record.fetched_at for row in touch]])
    if stale:
        _keep_versions(conn, table, stale)


def _keep_versions(conn: psycopg.Connection[Any], table: str, rows: Sequence[_Row]) -> None:
    """History for payloads no table row holds (stale fetches); the triggers cover the rest."""
    conn.execute(
        "INSERT INTO record_versions (entity_type, kind, procore_id, project_id, payload_hash,"
        " payload, source) SELECT %s, i.kind, i.procore_id, i.project_id, i.payload_hash,"
        " i.payload::jsonb, i.source FROM " + _ROW_ARRAYS +
        " WHERE NOT EXISTS (SELECT 1 FROM record_versions t WHERE " + _KEY_MATCH +
        " AND t.payload_hash = i.payload_hash) ON CONFLICT DO NOTHING",
        [table, *_row_columns(rows)])


def _log_outcomes(conn: psycopg.Connection[Any], rows: Sequence[_Row], outcomes: Mapping[int, Outcome],
                  old: Mapping[Key, _Stored]) -> None:
    """One sync_log row per change; an unchanged record logs only a cancelled delete."""
    entries = []
    for row in rows:
        outcome, stored = outcomes[row.position], old.get(row.key)
        if outcome in _ACTIONS:
            action, result = _ACTIONS[outcome]
            entries.append((row, action, result, _detail(row, stored)))
        elif stored is not None and stored.delete_pending:
            entries.append((row, "delete_cancelled", "ok", {"reason": "fetched and found"}))
    if entries:
        insert_log(conn, [(row.record.kind, row.record.procore_id, row.record.project_id, action,
                           result, row.payload_hash, detail)
                          for row, action, result, detail in entries])


def _detail(row: _Row, stored: _Stored | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"fetched_at": row.record.fetched_at, "source": row.record.source}
    if stored is not None:
        detail.update(previous_hash=stored.payload_hash, stored_fetched_at=stored.fetched_at,
                      stored_updated_at=stored.procore_updated_at,
                      fetched_updated_at=row.procore_updated_at)
        if stored.is_deleted:
            detail["deleted_at"] = stored.deleted_at
    return detail


# --- sync_log ---

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


# --- deletes: soft, and only on evidence ---

def _scope_sql(table: str, where: str) -> sql.Composed:
    return sql.SQL(where).format(table=sql.Identifier(table))


_SCOPE = "kind = %s AND coalesce(project_id, 0) = coalesce(%s, 0)"


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
    ``delete_pending``. A row missing while already pending (flagged by an earlier complete
    listing, or by a delete webhook) has two independent signals and is deleted, guard or not;
    so a single bad listing deletes nothing, and real deletes land one listing later instead of
    never. A later fetch that sees a pending row alive clears the flag. Rows fetched at or after
    ``at`` were seen alive later than the listing and are never deleted by it.
    """
    table = _check_scope(kind, project_id)
    _check_time(at, "at")
    if not 0.0 <= max_ratio <= 1.0:
        raise ValueError(f"max_ratio {max_ratio!r} is not between 0 and 1")
    in_range = " AND (payload->>'date') BETWEEN %s AND %s" if date_range else ""
    range_args: tuple[Any, ...] = tuple(date_range) if date_range else ()
    if parent_id is not None:
        if kind not in PARENT_FIELD:
            raise ValueError(f"{kind} is not listed per parent")
        in_range += " AND payload->>%s = %s"
        range_args += (PARENT_FIELD[kind], str(parent_id))
    with _atomic(conn):
        live_row = conn.execute(_scope_sql(table, "SELECT count(*) FROM {table} WHERE " + _SCOPE
                                           + " AND NOT is_deleted" + in_range),
                                (kind, project_id, *range_args)).fetchone()
        live = int(live_row[0]) if live_row else 0
        rows = conn.execute(_scope_sql(
            table, "SELECT procore_id, delete_pending FROM {table} t WHERE " + _SCOPE + " AND NOT is_deleted"
            + in_range + " AND fetched_at < %s AND NOT EXISTS (SELECT 1 FROM unnest(%b::bigint[]) AS s (id)"
            " WHERE s.id = t.procore_id) ORDER BY procore_id FOR NO KEY UPDATE"),
            (kind, project_id, *range_args, at, list(seen_ids))).fetchall()
        missing = [int(r[0]) for r in rows]
        corroborated = [int(r[0]) for r in rows if r[1]]
        unconfirmed = [int(r[0]) for r in rows if not r[1]]
        if len(unconfirmed) > max_ratio * live and len(unconfirmed) > MASS_DELETE_FLOOR:
            log_sync(conn, kind, project_id, "soft_delete", {
                "live": live, "would_delete": len(missing), "max_ratio": max_ratio, "at": at,
                "held_pending": len(unconfirmed), "corroborated": len(corroborated)},
                result="refused_mass_delete")
            held = _flag_delete_pending(conn, table, kind, project_id, unconfirmed)
            deleted = _soft_delete(conn, table, kind, project_id, corroborated, at,
                                   "missing_from_two_listings")
            return DeleteResult(live, len(missing), deleted, guard_tripped=True, held=held)
        deleted = _soft_delete(conn, table, kind, project_id, missing, at, "missing_from_listing")
    return DeleteResult(live, len(missing), deleted, guard_tripped=False)


def _flag_delete_pending(conn: psycopg.Connection[Any], table: str, kind: str, project_id: int | None,
                         procore_ids: Sequence[int]) -> int:
    if not procore_ids:
        return 0
    rows = conn.execute(_scope_sql(
        table, "UPDATE {table} SET delete_pending = true WHERE " + _SCOPE
        + " AND procore_id = ANY(%b::bigint[]) AND NOT is_deleted AND NOT delete_pending"
        " RETURNING procore_id, payload_hash"), (kind, project_id, list(procore_ids))).fetchall()
    if rows:
        insert_log(conn, [(kind, int(procore_id), project_id, "delete_pending", "ok", str(digest),
                           {"reason": "missing_from_listing_over_guard"}) for procore_id, digest in rows])
    return len(rows)


def _soft_delete(conn: psycopg.Connection[Any], table: str, kind: str, project_id: int | None,
                 procore_ids: Sequence[int], at: datetime, reason: str) -> int:
    if not procore_ids:
        return 0
    rows = conn.execute(_scope_sql(
        table, "UPDATE {table} SET is_deleted = true, deleted_at = %s, delete_pending = false,"
        " local_updated_at = now() WHERE " + _SCOPE + " AND procore_id = ANY(%b::bigint[])"
        " AND NOT is_deleted RETURNING procore_id, payload_hash"),
        (at, kind, project_id, list(procore_ids))).fetchall()
    if rows:
        insert_log(conn, [(kind, int(procore_id), project_id, "soft_delete", "ok", str(digest),
                           {"reason": reason, "at": at}) for procore_id, digest in rows])
    return len(rows)


# Kinds listed per parent record: (child kind, parent kind, the child's field naming its parent).
# A parent deleted upstream takes its children along (its listing answers 404 from then on).
CHILDREN: tuple[tuple[str, str, str], ...] = (("drawing", "drawing_area", "drawing_area_id"),)
PARENT_FIELD = {child: field for child, _parent, field in CHILDREN}


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
        child_table, parent_table = _check_scope(child_kind, project_id), _check_scope(parent, project_id)
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
    table = _check_scope(kind, project_id)
    _check_time(at, "at")
    locked = conn.execute(_scope_sql(
        table, "SELECT procore_id FROM {table} WHERE " + _SCOPE + " AND procore_id = %s"
        " AND NOT is_deleted AND fetched_at <= %s FOR NO KEY UPDATE"),
        (kind, project_id, procore_id, at)).fetchall()
    ids = [int(row[0]) for row in locked]
    return _soft_delete(conn, table, kind, project_id, ids, at, "confirmed_deleted") == 1


def mark_delete_pending(conn: psycopg.Connection[Any], kind: str, project_id: int | None,
                        procore_id: int) -> bool:
    """A delete webhook arrived: flag the live row until a fetch confirms or refutes it."""
    table = _check_scope(kind, project_id)
    row = conn.execute(_scope_sql(
        table, "UPDATE {table} SET delete_pending = true WHERE " + _SCOPE + " AND procore_id = %s"
        " AND NOT is_deleted AND NOT delete_pending RETURNING payload_hash"),
        (kind, project_id, procore_id)).fetchone()
    if row is None:
        return False
    log_sync(conn, kind, project_id, "delete_pending", None, procore_id=procore_id,
             payload_hash=str(row[0]))
    return True


# --- cursors ---

def read_cursor(conn: psycopg.Connection[Any], kind: str, project_id: int | None) -> datetime | None:
    _check_scope(kind, project_id)
    row = conn.execute("SELECT cursor_at FROM sync_cursors WHERE " + _SCOPE,
                       (kind, project_id)).fetchone()
    return None if row is None else row[0]


def advance_cursor(conn: psycopg.Connection[Any], kind: str, project_id: int | None,
                   cursor_at: datetime) -> datetime:
    """Move the cursor to ``cursor_at`` unless it is already later; returns the cursor."""
    _check_scope(kind, project_id)
    _check_time(cursor_at, "cursor_at")
    row = conn.execute(
        "INSERT INTO sync_cursors (kind, project_id, cursor_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (kind, (coalesce(project_id, 0))) DO UPDATE"
        " SET cursor_at = greatest(sync_cursors.cursor_at, EXCLUDED.cursor_at), updated_at = now()"
        " RETURNING cursor_at", (kind, project_id, cursor_at)).fetchone()
    assert row is not None  # an upsert always returns its row
    return row[0]
