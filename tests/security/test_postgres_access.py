"""Finding 1 and 10 of issue 17, replayed against the embedded PostgreSQL the fixtures start (the
same code as `eva00 up`): no login without the generated password, and the app role the stages
use cannot switch a guard off, delete legal records, run OS commands or read the server's files."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eva00.runtime import roles
from tests.conftest import Stack


@pytest.fixture
def app(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def protected(owner_database_url: str) -> list[str]:
    with psycopg.connect(owner_database_url) as conn:
        tables = roles.protected_tables(conn)
    assert {"rfis", "record_versions", "record_files", "files"} <= set(tables)
    return tables


def _without_password(url: str, user: str) -> str:
    params = conninfo_to_dict(url)
    params.update(user=user, passfile="/nonexistent", password="")
    return make_conninfo(**params)


@pytest.mark.parametrize("role", ["eva00", "eva00_owner", "postgres"])
def test_no_role_logs_in_without_the_password(database_url: str, role: str) -> None:
    with pytest.raises(psycopg.OperationalError, match=r"password|does not exist"):
        psycopg.connect(_without_password(database_url, role), connect_timeout=5)


@pytest.mark.parametrize("role", ["eva00", "eva00_owner"])
def test_a_guessed_password_is_refused(database_url: str, role: str) -> None:
    params = conninfo_to_dict(_without_password(database_url, role))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(make_conninfo(**{**params, "password": "eva00"}), connect_timeout=5)


def test_the_server_trusts_no_connection(stack: Stack) -> None:
    rules = [line.split() for line in (stack.base / "pg" / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules), rules


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("psql"),
                    reason="needs root (to act as another local account) and psql")
def test_another_local_account_cannot_log_in_nor_read_the_password_files(stack: Stack,
                                                                         database_url: str) -> None:
    # What an ordinary local user tries: psql as each role, pointing libpq at the stack's pgpass.
    pgpass = stack.base / "secrets" / "pgpass"
    env = {"PATH": "/usr/bin:/bin", "PGPASSFILE": str(pgpass), "PGCONNECT_TIMEOUT": "5"}
    port = str(conninfo_to_dict(database_url)["port"])
    for role in ("eva00", "eva00_owner"):
        done = subprocess.run(["psql", "-w", "-h", "127.0.0.1", "-p", port, "-U", role, "-d", "eva00",
                               "-c", "SELECT 1"], capture_output=True, text=True, env=env,
                              preexec_fn=_as_nobody, cwd="/", timeout=60)
        assert done.returncode != 0 and "password" in done.stderr, done.stderr
    done = subprocess.run(["cat", str(pgpass)], capture_output=True, text=True, preexec_fn=_as_nobody,
                          cwd="/", timeout=60)
    assert done.returncode != 0 and "Permission denied" in done.stderr


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def test_the_app_role_is_no_superuser_and_owns_nothing(app: psycopg.Connection[Any]) -> None:
    row = app.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles"
                      " WHERE rolname = current_user").fetchone()
    assert row == (False, False, False, False)
    owned = app.execute("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
                        " WHERE r.rolname = current_user").fetchone()
    assert owned == (0,)


@pytest.mark.parametrize("statement", ["ALTER TABLE rfis DISABLE TRIGGER USER",
                                       "ALTER TABLE rfis DISABLE TRIGGER rfis_no_delete",
                                       "DROP TRIGGER rfis_no_delete ON rfis",
                                       "ALTER TABLE record_versions OWNER TO eva00",
                                       "SET session_replication_role = replica"])
def test_the_app_role_cannot_switch_the_delete_guard_off(app: psycopg.Connection[Any],
                                                         statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute(statement)
    enabled = app.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'rfis_no_delete'").fetchone()
    assert enabled == ("O",)


def test_the_app_role_can_neither_delete_nor_truncate_a_protected_table(
        app: psycopg.Connection[Any], protected: list[str]) -> None:
    app.execute("INSERT INTO rfis (kind, procore_id, project_id, payload, payload_hash, fetched_at,"
                " source) VALUES ('rfi', 1, 7, '{}', 'h', now(), 'api')")
    for table in protected:
        for verb in ("DELETE FROM {}", "TRUNCATE {}"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(sql.SQL(verb).format(sql.Identifier(table)))
    assert app.execute("SELECT count(*) FROM rfis").fetchone() == (1,)
    assert app.execute("SELECT count(*) FROM record_versions").fetchone() == (1,)


def test_the_app_role_deletes_exactly_where_the_product_deletes(app: psycopg.Connection[Any]) -> None:
    rows = app.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                       " WHERE n.nspname = 'public' AND c.relkind = 'r'"
                       " AND has_table_privilege(c.oid, 'DELETE') ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == sorted(roles.APP_DELETES)
    truncatable = app.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                              " ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
                              " AND c.relkind = 'r' AND has_table_privilege(c.oid, 'TRUNCATE')"
                              ).fetchone()
    assert truncatable == (0,)
    app.execute("INSERT INTO sync_log (action) VALUES ('insert')")
    assert app.execute("DELETE FROM sync_log").rowcount == 1  # retention still works


@pytest.mark.parametrize("statement", ["COPY (SELECT 1) TO PROGRAM 'id'",
                                       "COPY sync_log FROM PROGRAM 'id'",
                                       "SELECT pg_read_file('/etc/passwd')",
                                       "COPY (SELECT 1) TO '/tmp/eva00-attack'",
                                       "SELECT rolpassword FROM pg_authid",
                                       "CREATE TABLE public.attacker (x int)",
                                       "ALTER ROLE eva00 SUPERUSER",
                                       "CREATE ROLE attacker LOGIN"])
def test_the_app_role_cannot_reach_the_operating_system_or_other_roles(
        app: psycopg.Connection[Any], statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute(statement)
    assert not Path("/tmp/eva00-attack").exists()


def test_the_app_role_reads_and_writes_what_the_stages_need(app: psycopg.Connection[Any]) -> None:
    tables = app.execute("SELECT c.relname, has_table_privilege(c.oid, 'SELECT'),"
                         " has_table_privilege(c.oid, 'INSERT'), has_table_privilege(c.oid, 'UPDATE')"
                         " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                         " WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchall()
    # schema_applied is the owner's: an app role that could rewrite its hash could stop upgrades
    stage_tables = [row for row in tables if row[0] != "schema_applied"]
    assert len(stage_tables) > 20 and all(row[1:] == (True, True, True) for row in stage_tables)
    assert ("schema_applied", False, False, False) in tables
    assert app.execute("SELECT count(*) FROM live.rfis").fetchone() == (0,)


def test_db_init_creates_a_restricted_app_role_on_an_external_server(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from eva00.cli.main import main

    suffix = uuid.uuid4().hex[:10]
    name, role = f"ext_{suffix}", f"app_{suffix}"
    with psycopg.connect(stack.admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    app_url = make_conninfo(**{**conninfo_to_dict(stack.database_url(name)), "user": role,
                               "password": "app-" + suffix, "passfile": "/nonexistent"})
    monkeypatch.setenv("DATABASE_URL", _as_url(app_url))
    monkeypatch.setenv("REDIS_URL", stack.redis_url)
    monkeypatch.setenv("EVA00_DATABASE_OWNER_URL", stack.owner_url(name))
    umask = os.umask(0o022)
    try:
        assert main(["db", "init", "--create-app-role", "--wait-s", "30"]) == 0
        with psycopg.connect(app_url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM sync_log").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM record_versions")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("ALTER TABLE rfis DISABLE TRIGGER USER")
    finally:
        os.umask(umask)
        with psycopg.connect(stack.admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def _as_url(conninfo: str) -> str:
    params = conninfo_to_dict(conninfo)
    return (f"postgresql://{params['user']}:{params['password']}@{params['host']}:{params['port']}"
            f"/{params['dbname']}")
