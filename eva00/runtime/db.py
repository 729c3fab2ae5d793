"""PostgreSQL: the only durable truth. Connection pool, schema application, readiness.

schema.sql is idempotent and applied under an advisory lock, so every stage may apply it at start
(the stack has no separate migration step that could be forgotten) without racing its peers. A
database already at this schema.sql (its hash recorded in ``schema_applied``) is left alone: its
ALTER TABLEs take ACCESS EXCLUSIVE locks even when there is nothing to add, and a stage starting
while others read several tables in one transaction would deadlock with them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

from eva00.config import ROOT_DIR, Settings
from eva00.runtime.backoff import capped_backoff_s

log = logging.getLogger(__name__)

SCHEMA_PATH = ROOT_DIR / "schema.sql"
# Any constant works; it only has to be the same for every process applying the schema.
SCHEMA_LOCK_KEY = 0x0E7A00


def apply_schema(database_url: str, schema_path: Path = SCHEMA_PATH) -> None:
    sql = schema_path.read_text()
    digest = hashlib.sha256(sql.encode()).hexdigest()
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        if _applied_hash(conn) == digest:
            return
        conn.execute(sql.encode())
        conn.execute("CREATE TABLE IF NOT EXISTS schema_applied (id int PRIMARY KEY CHECK (id = 1),"
                     " sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("INSERT INTO schema_applied (id, sha256) VALUES (1, %s) ON CONFLICT (id) DO UPDATE"
                     " SET sha256 = EXCLUDED.sha256, applied_at = now()", (digest,))


def _applied_hash(conn: psycopg.Connection[Any]) -> str | None:
    if conn.execute("SELECT to_regclass('schema_applied')").fetchone() in (None, (None,)):
        return None
    row = conn.execute("SELECT sha256 FROM schema_applied WHERE id = 1").fetchone()
    return str(row[0]) if row else None


def create_database_if_missing(database_url: str) -> None:
    """Embedded mode creates its own database; an external DATABASE_URL must already exist."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        # Every stage starts at once: one of them creates it first, the others find it there.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))


def wait_until_ready(settings: Settings, *, timeout_s: float = 120.0,
                     sleep: Callable[[float], None] = time.sleep) -> None:
    """Block until PostgreSQL answers and the schema is applied (stages start before postgres)."""
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        try:
            if settings.embedded_postgres:
                create_database_if_missing(settings.effective_database_url)
            apply_schema(settings.effective_database_url)
            return
        except psycopg.OperationalError as exc:
            attempt += 1
            if time.monotonic() > deadline:
                raise
            log.info("waiting for PostgreSQL (%s)", str(exc).splitlines()[0] if str(exc) else exc)
            sleep(capped_backoff_s(attempt, cap_s=settings.outage_backoff_cap_s))


def make_pool(settings: Settings, *, min_size: int = 1, max_size: int = 4,
              name: str = "eva00") -> ConnectionPool:
    """A pool whose connections are checked before use, so a PostgreSQL restart heals itself."""
    return ConnectionPool(
        settings.effective_database_url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=True,
        check=ConnectionPool.check_connection,
        kwargs={"application_name": name},
    )
