"""The app role: what the stages may do in PostgreSQL, granted by the schema's owner.

The stages never own a table, so they cannot ALTER it or switch its triggers off, and the
schema's DELETE/TRUNCATE guard holds against them, not only against bugs. They read and write
every table, delete only where the product itself deletes (below), and are no superuser (no
``COPY ... TO PROGRAM``, no server files). The protected tables are read from the schema's own
guard triggers, so a table protected in schema.sql is never granted DELETE here.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

# Every DELETE the product runs, by table: sync_log's archiving (eva00/ops/archive.py),
# webhook_events' retention (eva00/webhooks/retention.py) and reconcile_seen's clean-up after a
# delete reconciliation (eva00/replica/polls.py). Nothing else is ever deleted.
APP_DELETES = ("sync_log", "webhook_events", "reconcile_seen")
SCHEMAS = ("public", "live")
ROLE_LOCK_KEY = 0x0E7A01  # any constant; the same in every process creating the app role
GRANTS_SUMMARY = ("SELECT, INSERT, UPDATE on every table, SELECT on live.*, USAGE on the sequences,"
                  " DELETE on " + ", ".join(APP_DELETES) + " only")


def protected_tables(conn: psycopg.Connection) -> list[str]:
    """Tables carrying schema.sql's DELETE guard (eva00_protect)."""
    rows = conn.execute(
        "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " JOIN pg_proc p ON p.oid = t.tgfoid"
        " WHERE p.proname = 'eva00_refuse_delete' ORDER BY 1").fetchall()
    return [row[0] for row in rows]


def create_app_role(conn: psycopg.Connection, role: str, password: str, *,
                    reset_password: bool = True) -> None:
    """The login role the stages use, without any attribute beyond LOGIN. Every stage calls this
    at start (``reset_password=False``: create if missing), so it runs under an advisory lock:
    concurrent CREATE/ALTER ROLE of one role fail with "tuple concurrently updated"."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ROLE_LOCK_KEY,))
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists and not reset_password:
            return
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                             " NOBYPASSRLS PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))


def grant_app_role(conn: psycopg.Connection, role: str) -> None:
    """Idempotent: run after every schema application, as the owner, in its transaction."""
    ident = sql.Identifier(role)
    database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
        sql.Identifier(database[0]), ident))
    # Before PostgreSQL 15 every role may create objects in public (and own them).
    conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    for schema in SCHEMAS:
        schema_ident = sql.Identifier(schema)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema_ident, ident))
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema_ident, ident))
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {}").format(ident))
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA live TO {}").format(ident))
    conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident))
    protected = set(protected_tables(conn))
    for table in APP_DELETES:
        if table in protected:
            raise RuntimeError(f"{table} is protected by schema.sql and cannot be granted DELETE")
        conn.execute(sql.SQL("GRANT DELETE ON {} TO {}").format(sql.Identifier(table), ident))


def can_apply_schema(conn: psycopg.Connection) -> bool:
    """True on an empty database or when the connected role owns the schema's tables."""
    row = conn.execute(
        "SELECT c.relowner IS NULL OR pg_has_role(current_user, c.relowner, 'USAGE')"
        " FROM (SELECT to_regclass('record_files') AS oid) r LEFT JOIN pg_class c ON c.oid = r.oid"
    ).fetchone()
    return bool(row and row[0])
