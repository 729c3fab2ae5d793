"""What every replica table module shares: which entity table a kind and project address, the
checks that refuse a bad scope before anything is written, and the SQL fragments that match rows
by their identity ``(kind, procore_id, coalesce(project_id, 0))``, the tables' unique index.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from eva00.kinds import COMPANY_LEVEL_KINDS, KIND_TABLE

Key = tuple[str, int, int]  # (kind, procore_id, project_id or 0): the tables' identity index

# Rows of one kind in one project (NULL project for company-level kinds): (kind, project_id).
SCOPE = "kind = %s AND coalesce(project_id, 0) = coalesce(%s, 0)"

# Keys as three parallel arrays, unnested as ``i`` and matched against a table aliased ``t``.
KEY_ARRAYS = "%b::text[], %b::bigint[], %b::bigint[]"
KEY_MATCH = ("t.kind = i.kind AND t.procore_id = i.procore_id"
             " AND coalesce(t.project_id, 0) = coalesce(i.project_id, 0)")

# A fetched row's columns as parallel arrays, in the order records.row_columns() builds them.
ROW_ARRAYS = ("unnest(%b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::text[],"
              " %b::timestamptz[], %b::timestamptz[], %b::text[]) AS i (kind, procore_id,"
              " project_id, payload, payload_hash, procore_updated_at, fetched_at, source)")


def checked_table(kind: str, project_id: int | None) -> str:
    """The kind's table, after checking that the project scope fits the kind."""
    if kind not in KIND_TABLE:
        raise ValueError(f"unknown kind {kind!r}")
    if kind in COMPANY_LEVEL_KINDS and project_id is not None:
        raise ValueError(f"{kind} is company-level: project_id must be None, not {project_id!r}")
    if kind not in COMPANY_LEVEL_KINDS and not is_id(project_id):
        raise ValueError(f"{kind} belongs to a project: project_id {project_id!r} is not an id")
    return KIND_TABLE[kind]


def is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_time(value: Any, what: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, not {value!r}")


def key_columns(keys: Sequence[Key]) -> list[list[Any]]:
    return [[key[0] for key in keys], [key[1] for key in keys], [key[2] or None for key in keys]]


def scoped(table: str, where: str) -> sql.Composed:
    """``where`` with ``{table}`` replaced by the quoted entity table."""
    return sql.SQL(where).format(table=sql.Identifier(table))


def atomic(conn: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
    """The caller owns the transaction (the stage commits a whole message at once); only an
    autocommit connection gets one here, so several statements never half-apply."""
    return conn.transaction() if conn.autocommit else nullcontext()
