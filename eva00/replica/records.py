"""The entity tables' rows: fetched records in, each row locked, decided and written once.

A row is never overwritten by a fetch older than the one that produced it: ``fetched_at`` is
Procore's own Date header, so our clock's skew does not matter. A payload a stale fetch brought
is not stored in the row but kept in ``record_versions`` (versions.py); each decision that
changes a row is logged to ``sync_log`` (synclog.py).

Concurrent differs on the same rows are safe: existing rows are locked (``FOR NO KEY UPDATE``)
in table, then key order before anything is decided, new rows are inserted ``ON CONFLICT DO
NOTHING`` in the same order, and a row another differ inserted meanwhile is then locked and
decided like any other. A second differ therefore decides on what the first committed, never on
what it read before. The caller owns the transaction: nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from eva00.hashing import canonical_json, payload_hash
from eva00.replica import synclog, versions
from eva00.replica.scope import (
    KEY_ARRAYS,
    KEY_MATCH,
    ROW_ARRAYS,
    Key,
    atomic,
    check_time,
    checked_table,
    is_id,
    key_columns,
)

SOURCES = frozenset({"api", "webhook", "pdf_import"})


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

class _Row(NamedTuple):
    position: int  # in the caller's sequence
    table: str
    key: Key
    record: FetchedRecord
    payload_json: str
    payload_hash: str
    procore_updated_at: datetime | None


def _prepare(index: int, record: FetchedRecord) -> _Row:
    where = f"record {index} ({record.kind} {record.procore_id!r})"
    try:
        table = checked_table(record.kind, record.project_id)
        if not isinstance(record.payload, Mapping):
            raise ValueError("payload is not a JSON object")
        if not is_id(record.procore_id):
            raise ValueError("procore_id is not an integer")
        if "id" not in record.payload:
            raise ValueError("payload has no id")
        if record.payload["id"] != record.procore_id:
            raise ValueError(f"payload id {record.payload['id']!r} is not the record's id")
        if record.source not in SOURCES:
            raise ValueError(f"source {record.source!r} is not one of {sorted(SOURCES)}")
        check_time(record.fetched_at, "fetched_at")
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


def upsert_records(conn: psycopg.Connection[Any], records: Sequence[FetchedRecord]) -> list[Outcome]:
    """Apply fetched records; one Outcome per record, in order. Idempotent."""
    rows = [_prepare(index, record) for index, record in enumerate(records)]
    by_table: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_table[row.table].append(row)
    outcomes: dict[int, Outcome] = {}
    with atomic(conn):
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


def _lock_existing(conn: psycopg.Connection[Any], table: str, keys: Sequence[Key]) -> dict[Key, _Stored]:
    if not keys:
        return {}
    query = sql.SQL(
        "SELECT t.kind, t.procore_id, coalesce(t.project_id, 0), t.payload_hash, t.fetched_at,"
        " t.procore_updated_at, t.is_deleted, t.deleted_at, t.delete_pending"
        " FROM {table} t JOIN unnest(" + KEY_ARRAYS + ") AS i (kind, procore_id, project_id)"
        " ON " + KEY_MATCH +
        " ORDER BY t.kind, t.procore_id, coalesce(t.project_id, 0) FOR NO KEY UPDATE OF t"
    ).format(table=sql.Identifier(table))
    rows = conn.execute(query, key_columns(keys)).fetchall()
    return {(row[0], row[1], row[2]): _Stored(*row[3:]) for row in rows}


def _row_columns(rows: Sequence[_Row]) -> list[list[Any]]:
    """The rows as the parallel arrays of ``scope.ROW_ARRAYS``."""
    return [*key_columns([row.key for row in rows]),
            [row.payload_json for row in rows], [row.payload_hash for row in rows],
            [row.procore_updated_at for row in rows], [row.record.fetched_at for row in rows],
            [row.record.source for row in rows]]


def _insert_new(conn: psycopg.Connection[Any], table: str, rows: Sequence[_Row]) -> set[Key]:
    query = sql.SQL(
        "INSERT INTO {table} (kind, procore_id, project_id, payload, payload_hash,"
        " procore_updated_at, fetched_at, source)"
        " SELECT i.kind, i.procore_id, i.project_id, i.payload::jsonb, i.payload_hash,"
        " i.procore_updated_at, i.fetched_at, i.source FROM " + ROW_ARRAYS +
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
            " delete_pending = false FROM " + ROW_ARRAYS + " WHERE " + KEY_MATCH
        ).format(table=sql.Identifier(table)), _row_columns(rewrite))
    if touch:
        conn.execute(sql.SQL(
            "UPDATE {table} t SET fetched_at = greatest(t.fetched_at, i.fetched_at),"
            " delete_pending = false FROM unnest(" + KEY_ARRAYS + ", %b::timestamptz[])"
            " AS i (kind, procore_id, project_id, fetched_at) WHERE " + KEY_MATCH
        ).format(table=sql.Identifier(table)),
            [*key_columns([row.key for row in touch]), [row.record.fetched_at for row in touch]])
    if stale:
        versions.keep_versions(conn, table, _row_columns(stale))


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
        synclog.insert_log(conn, [(row.record.kind, row.record.procore_id, row.record.project_id,
                                   action, result, row.payload_hash, detail)
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
