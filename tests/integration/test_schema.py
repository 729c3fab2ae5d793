"""schema.sql against real PostgreSQL: idempotent (also when applied by four processes at once),
legal records refuse DELETE and TRUNCATE, `live` views hide soft-deleted rows, and the kind
CHECKs, identity indexes and alert dedup hold the contracts the code relies on."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from eva00.kinds import COMPANY_LEVEL_KINDS, ENTITY_TABLES, KIND_TABLE
from eva00.replica.files import FileState
from eva00.runtime import alerts, db
from tests.conftest import Stack

SHA_A = "a" * 64
SHA_B = "b" * 64
PROTECTED_TABLES = (*ENTITY_TABLES, "record_versions", "files", "record_files", "thumbnails",
                    "file_texts")
SCHEMAS = ("public", "live")

# What "the schema" is, as the catalog sees it; OIDs included, so a dropped-and-recreated
# relation is a difference too.
CATALOG_QUERIES = {
    "relations": "SELECT n.nspname, c.relname, c.relkind, c.oid::bigint FROM pg_class c"
                 " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%(schemas)s)",
    "columns": "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
               " a.attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
               " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
               " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
               " WHERE n.nspname = ANY(%(schemas)s) AND a.attnum > 0 AND NOT a.attisdropped",
    "indexes": "SELECT schemaname, indexname, indexdef FROM pg_indexes"
               " WHERE schemaname = ANY(%(schemas)s)",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(c.oid)"
                   " FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
                   " WHERE n.nspname = ANY(%(schemas)s)",
    "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger"
                " WHERE NOT tgisinternal",
    "functions": "SELECT proname, pg_get_function_identity_arguments(p.oid), md5(prosrc)"
                 " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                 " WHERE n.nspname = ANY(%(schemas)s)",
    "views": "SELECT schemaname, viewname, definition FROM pg_views WHERE schemaname = ANY(%(schemas)s)",
}


@pytest.fixture
def conn(owner_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    # As the owner: the guards below hold even for the role that may alter the tables (the app
    # role cannot even try; tests/security/test_postgres_access.py).
    with psycopg.connect(owner_database_url, autocommit=True) as connection:
        yield connection


def _catalog(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(database_url) as connection:
        return {name: sorted(connection.execute(query, {"schemas": list(SCHEMAS)}).fetchall(),
                             key=repr)
                for name, query in CATALOG_QUERIES.items()}


def _without_oids(catalog: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {**catalog, "relations": [row[:3] for row in catalog["relations"]]}


def _kind_of(table: str) -> str:
    return next(kind for kind, owner in KIND_TABLE.items() if owner == table)


def _add_record(conn: psycopg.Connection[Any], kind: str, procore_id: int = 1,
                project_id: int | None = 7, **columns: Any) -> None:
    if kind in COMPANY_LEVEL_KINDS:
        project_id = None
    values = {"kind": kind, "procore_id": procore_id, "project_id": project_id,
              "payload": f'{{"id": {procore_id}, "number": "{procore_id}"}}', "payload_hash": "h1",
              "fetched_at": "2026-11-01T10:00:00Z", "source": "api", **columns}
    conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(KIND_TABLE[kind]), sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values))), list(values.values()))


def _add_row(conn: psycopg.Connection[Any], table: str) -> None:
    """One row in any protected table (record_versions fills itself from the entity tables)."""
    if table in ENTITY_TABLES or table == "record_versions":
        _add_record(conn, "rfi" if table == "record_versions" else _kind_of(table))
        return
    conn.execute("INSERT INTO files (sha256, size_bytes, storage_path) VALUES (%s, 10, 'a'),"
                 " (%s, 5, 'b')", (SHA_A, SHA_B))
    if table == "record_files":
        conn.execute("INSERT INTO record_files (kind, procore_id, project_id, url_field, sha256)"
                     " VALUES ('rfi', 1, 7, 'attachments[id=1].url', %s)", (SHA_A,))
    elif table == "thumbnails":
        conn.execute("INSERT INTO thumbnails (source_sha256, thumbnail_sha256) VALUES (%s, %s)",
                     (SHA_A, SHA_B))
    elif table == "file_texts":
        conn.execute("INSERT INTO file_texts (sha256, text) VALUES (%s, 'steel beam')", (SHA_A,))


def _count(conn: psycopg.Connection[Any], relation: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier(*relation.split(".")))).fetchone()
    assert row is not None
    return int(row[0])


# --- idempotence ---

def test_applying_the_schema_again_changes_nothing_in_the_catalog(owner_database_url: str) -> None:
    before = _catalog(owner_database_url)
    db.apply_schema(owner_database_url, app_role="eva00")
    db.apply_schema(owner_database_url, app_role="eva00")
    after = _catalog(owner_database_url)
    assert after == before
    assert len(before["relations"]) > 100  # the snapshot really saw the schema


def test_applying_the_schema_again_keeps_every_row(owner_database_url: str,
                                                   conn: psycopg.Connection[Any]) -> None:
    _add_record(conn, "rfi")
    conn.execute("INSERT INTO sync_log (action) VALUES ('insert')")
    db.apply_schema(owner_database_url)
    assert (_count(conn, "rfis"), _count(conn, "record_versions"), _count(conn, "sync_log")) == (1, 1, 1)


def test_four_processes_applying_the_schema_at_once_to_an_empty_database_all_succeed(
        stack: Stack, database_url: str) -> None:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(stack.admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = stack.owner_url(name)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def apply() -> None:
        try:
            start.wait()
            db.apply_schema(url)
        except BaseException as exc:  # collected and asserted below, in the test's thread
            errors.append(exc)

    try:
        threads = [threading.Thread(target=apply) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert _without_oids(_catalog(url)) == _without_oids(_catalog(stack.owner_url(
            str(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]))))
    finally:
        with psycopg.connect(stack.admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- legal records are never deleted ---

@pytest.mark.parametrize("table", PROTECTED_TABLES)
def test_a_legal_record_cannot_be_deleted(conn: psycopg.Connection[Any], table: str) -> None:
    _add_row(conn, table)
    rows = _count(conn, table)
    with pytest.raises(psycopg.errors.RestrictViolation,
                       match=f"eva00: {table} rows are legal records and are never deleted"):
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
    assert _count(conn, table) == rows > 0


@pytest.mark.parametrize("table", PROTECTED_TABLES)
def test_a_table_of_legal_records_cannot_be_truncated(conn: psycopg.Connection[Any], table: str) -> None:
    _add_row(conn, table)
    rows = _count(conn, table)
    with pytest.raises(psycopg.errors.RestrictViolation, match=f"eva00: {table} rows are legal"):
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.Identifier(table)))
    assert _count(conn, table) == rows > 0


def test_the_refusal_tells_what_to_do_instead(conn: psycopg.Connection[Any]) -> None:
    _add_record(conn, "rfi")
    with pytest.raises(psycopg.errors.RestrictViolation, match="set is_deleted instead"):
        conn.execute("DELETE FROM rfis WHERE procore_id = 1")


def test_sync_log_rows_can_be_deleted_by_the_retention_job(conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO sync_log (action) VALUES ('insert'), ('update')")
    conn.execute("DELETE FROM sync_log WHERE action = 'insert'")
    assert _count(conn, "sync_log") == 1
    conn.execute("TRUNCATE sync_log")
    assert _count(conn, "sync_log") == 0


# --- history ---

def test_every_payload_a_row_ever_held_is_kept_in_record_versions(conn: psycopg.Connection[Any]) -> None:
    _add_record(conn, "rfi")
    conn.execute("""UPDATE rfis SET payload = '{"id": 1, "number": "1A"}', payload_hash = 'h2'""")
    conn.execute("UPDATE rfis SET is_deleted = true")  # same payload: no new version
    versions = conn.execute("SELECT entity_type, kind, procore_id, project_id, payload_hash,"
                            " payload->>'number' FROM record_versions ORDER BY id").fetchall()
    assert versions == [("rfis", "rfi", 1, 7, "h1", "1"), ("rfis", "rfi", 1, 7, "h2", "1A")]


def test_rfis_and_submittals_expose_their_number_for_the_pdf_importer(
        conn: psycopg.Connection[Any]) -> None:
    _add_record(conn, "rfi", 41)
    _add_record(conn, "submittal", 42)
    assert conn.execute("SELECT number FROM rfis").fetchone() == ("41",)
    assert conn.execute("SELECT number FROM submittals").fetchone() == ("42",)


# --- views ---

@pytest.mark.parametrize("table", ENTITY_TABLES)
def test_the_live_view_hides_soft_deleted_rows(conn: psycopg.Connection[Any], table: str) -> None:
    _add_record(conn, _kind_of(table), 1)
    _add_record(conn, _kind_of(table), 2, is_deleted=True, deleted_at="2026-11-02T00:00:00Z")
    live = conn.execute(sql.SQL("SELECT procore_id FROM live.{}").format(sql.Identifier(table)))
    assert live.fetchall() == [(1,)]
    assert _count(conn, table) == 2


def test_replica_records_covers_every_entity_table(conn: psycopg.Connection[Any]) -> None:
    for table in ENTITY_TABLES:
        _add_record(conn, _kind_of(table), is_deleted=table == "rfis")
    rows = conn.execute("SELECT entity_type, kind, procore_id, payload_hash, is_deleted"
                        " FROM replica_records").fetchall()
    assert sorted(rows) == sorted((t, _kind_of(t), 1, "h1", t == "rfis") for t in ENTITY_TABLES)
    assert len(ENTITY_TABLES) == 14


# --- identity and kinds ---

def test_one_user_may_be_a_project_user_of_two_projects_but_not_twice_of_one(
        conn: psycopg.Connection[Any]) -> None:
    _add_record(conn, "project_user", 5, 7)
    _add_record(conn, "project_user", 5, 8)
    _add_record(conn, "company_user", 5)
    with pytest.raises(psycopg.errors.UniqueViolation, match="contacts_identity"):
        _add_record(conn, "project_user", 5, 7)


def test_a_company_level_record_is_unique_without_a_project(conn: psycopg.Connection[Any]) -> None:
    _add_record(conn, "vendor", 9)
    with pytest.raises(psycopg.errors.UniqueViolation, match="companies_identity"):
        _add_record(conn, "vendor", 9)


@pytest.mark.parametrize(("kind", "table"), sorted(KIND_TABLE.items()))
def test_every_kind_is_accepted_by_its_own_table(conn: psycopg.Connection[Any], kind: str,
                                                 table: str) -> None:
    _add_record(conn, kind)
    assert _count(conn, table) == 1


@pytest.mark.parametrize("table", ENTITY_TABLES)
def test_the_kind_check_rejects_every_kind_of_another_table(conn: psycopg.Connection[Any],
                                                            table: str) -> None:
    foreign = [kind for kind, owner in KIND_TABLE.items() if owner != table] + ["no_such_kind"]
    for kind in foreign:
        with pytest.raises(psycopg.errors.CheckViolation, match=f"{table}_kind_check"):
            conn.execute(sql.SQL("INSERT INTO {} (kind, procore_id, payload, payload_hash,"
                                 " fetched_at, source) VALUES (%s, 1, '{{}}', 'h', now(), 'api')"
                                 ).format(sql.Identifier(table)), (kind,))
    assert _count(conn, table) == 0



def test_the_record_files_status_column_accepts_exactly_the_file_states(
        conn: psycopg.Connection[Any]) -> None:
    for state in FileState:
        conn.execute("INSERT INTO record_files (kind, procore_id, url_field, status)"
                     " VALUES ('project', 1, %s, %s)", (state.value, state.value))
    with pytest.raises(psycopg.errors.CheckViolation, match="record_files_status_check"):
        conn.execute("INSERT INTO record_files (kind, procore_id, url_field, status)"
                     " VALUES ('project', 1, 'other', 'downloading')")


# --- alerts ---

def test_an_open_alert_is_deduplicated_and_a_resolved_one_can_open_again(
        conn: psycopg.Connection[Any]) -> None:
    assert alerts.raise_alert(conn, "disk:low", "warning", "disk 85% full") is True
    assert alerts.raise_alert(conn, "disk:low", "warning", "disk 86% full") is False
    assert conn.execute("SELECT occurrences, message FROM alerts").fetchall() == [(2, "disk 86% full")]
    with pytest.raises(psycopg.errors.UniqueViolation, match="alerts_open_key"):
        conn.execute("INSERT INTO alerts (alert_key, severity, message) VALUES ('disk:low', 'info', 'x')")
    assert alerts.resolve_alert(conn, "disk:low") is True
    assert alerts.raise_alert(conn, "disk:low", "critical", "disk 99% full") is True
    assert conn.execute("SELECT status, severity FROM alerts ORDER BY id").fetchall() == [
        ("resolved", "warning"), ("open", "critical")]
