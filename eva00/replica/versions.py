"""``record_versions``: every distinct payload ever seen per record.

The schema's statement triggers copy each payload an entity table stores, whoever writes it; this
module adds the payloads no table row ever holds (a stale fetch's), so history is complete. Rows
are only ever added: NOT EXISTS first, so known versions never draw a value from the id sequence,
and ON CONFLICT covers a concurrent writer of the same version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from eva00.replica.scope import KEY_MATCH, ROW_ARRAYS


def keep_versions(conn: psycopg.Connection[Any], table: str, columns: Sequence[list[Any]]) -> None:
    """History for payloads no table row holds (stale fetches); the triggers cover the rest.

    ``columns`` are the fetched rows as the parallel arrays of ``scope.ROW_ARRAYS``.
    """
    conn.execute(
        "INSERT INTO record_versions (entity_type, kind, procore_id, project_id, payload_hash,"
        " payload, source) SELECT %s, i.kind, i.procore_id, i.project_id, i.payload_hash,"
        " i.payload::jsonb, i.source FROM " + ROW_ARRAYS +
        " WHERE NOT EXISTS (SELECT 1 FROM record_versions t WHERE " + KEY_MATCH +
        " AND t.payload_hash = i.payload_hash) ON CONFLICT DO NOTHING",
        [table, *columns])
