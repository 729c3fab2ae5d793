"""API wins: when the API returns an item a PDF log imported, the imported row steps aside.

The differ calls ``adopt_imported`` for every RFI and submittal it is about to upsert. Imported
rows of the same project whose number matches are soft-marked as superseded (``is_deleted``,
``deleted_at``, a ``superseded_by_api`` line in sync_log naming the real id): the API row,
written under Procore's id by ``replica.records.upsert_records``, is then the only live row of the item,
and the imported payload stays where the version triggers put it, in ``record_versions``. Rows
are never re-keyed: the imported row's history stays under its synthetic id, the API's under the
real id, and the sync_log line links the two.

Numbers match when equal as printed, when the API number equals the import's full printed
number (``RFI-012``, ``03 30 00-007.01``), or when both are numeric and equal without leading
zeros (``012`` and ``12``). Every revision of a submittal is its own Procore record under one
number: the first API record of a number supersedes the imported rows of all its revisions, and
the API brings the other revisions as their own records. An import never revives a superseded
row and skips items whose number a live API row already has (`store.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from eva00.kinds import table_for
from eva00.replica import synclog

IMPORTED_KINDS = frozenset({"rfi", "submittal"})
NUMERIC = re.compile(r"^[0-9][0-9.]*$")


def number_key(number: str) -> str:
    """The form numbers are compared in: numeric numbers lose leading zeros."""
    number = number.strip()
    return number.lstrip("0") or "0" if NUMERIC.match(number) else number


def matches(api_numbers: set[str], record: dict[str, Any]) -> bool:
    """Whether an imported record is one of the items whose API numbers (keys) are given."""
    candidates: Iterable[Any] = (record.get("number"), record.get("full_number"),
                                 record.get("formatted_number"))
    return any(isinstance(c, str) and number_key(c) in api_numbers for c in candidates)


_MATCH = ("kind = %(kind)s AND project_id = %(project_id)s AND procore_id < 0"
          " AND source = 'pdf_import' AND NOT is_deleted AND (number = %(number)s"
          " OR payload->>'full_number' = %(number)s OR payload->>'formatted_number' = %(number)s"
          " OR (number ~ '^[0-9][0-9.]*$' AND %(number)s ~ '^[0-9][0-9.]*$'"
          " AND coalesce(nullif(ltrim(number, '0'), ''), '0') = %(key)s))")


def adopt_imported(conn: psycopg.Connection[Any], kind: str, project_id: int, number: str,
                   procore_id: int) -> bool:
    """Supersede the live imported rows of this item; True if there were any."""
    if kind not in IMPORTED_KINDS or not number:
        return False
    rows = conn.execute(sql.SQL(
        "UPDATE {table} SET is_deleted = true, deleted_at = now(), local_updated_at = now()"
        " WHERE " + _MATCH + " RETURNING procore_id, payload_hash, number"
    ).format(table=sql.Identifier(table_for(kind))),
        {"kind": kind, "project_id": project_id, "number": number, "key": number_key(number)}).fetchall()
    if rows:
        synclog.insert_log(conn, [
            (kind, int(imported_id), project_id, "superseded_by_api", "ok", str(digest),
             {"procore_id": procore_id, "number": number, "imported_number": imported_number,
              "reason": "the API returned this item; its row under the real id wins"})
            for imported_id, digest, imported_number in rows])
    return bool(rows)


def api_numbers(conn: psycopg.Connection[Any], kind: str, project_id: int) -> set[str]:
    """Number keys of the live API rows of a project: items an import must leave alone."""
    rows = conn.execute(sql.SQL(
        "SELECT number FROM {table} WHERE kind = %s AND project_id = %s AND procore_id > 0"
        " AND NOT is_deleted AND number IS NOT NULL").format(table=sql.Identifier(table_for(kind))),
        (kind, project_id)).fetchall()
    return {number_key(str(row[0])) for row in rows}
