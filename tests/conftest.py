"""Session fixtures: real PostgreSQL and Redis on free ports in a temp dir, started by the same
code as the embedded stack. Each test gets a fresh database cloned from a schema template and an
empty Redis, so tests never see each other's data and never depend on services the machine runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg.conninfo import conninfo_to_dict

from eva00.config import Settings
from eva00.ops.localstack import ChildServer, PostgresSpec, RedisSpec, temporary_stack
from eva00.runtime import db

pytest_plugins = ["tests.integration.sim_fixtures"]


class Stack:
    """The session's servers. ``admin_url`` is the schema owner's (creates and drops the test
    databases); tests and stages get the app role's URL and Redis user, as in production, while
    ``redis_admin_url`` is for fixtures that empty Redis."""

    def __init__(self, base: Path, pg_spec: PostgresSpec, redis_spec: RedisSpec,
                 pg: ChildServer, redis_server: ChildServer) -> None:
        self.base, self.pg_spec, self.redis_spec = base, pg_spec, redis_spec
        self.admin_url = pg_spec.owner_url
        self.redis_url, self.redis_admin_url = redis_spec.url, redis_spec.admin_url
        self.pg, self.redis_server = pg, redis_server

    def database_url(self, name: str) -> str:
        return self.pg_spec.database_url(name)

    def owner_url(self, name: str) -> str:
        return self.pg_spec.database_url(name, owner=True)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    base = Path(tempfile.mkdtemp(prefix="eva00-tests-"))
    try:
        with temporary_stack(base) as (_, _, pg, redis_server):
            pg_spec = PostgresSpec(base / "pg", pg.port)
            redis_spec = RedisSpec(base / "redis", redis_server.port)
            with psycopg.connect(pg_spec.owner_url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE eva00_template")
            db.apply_schema(pg_spec.database_url("eva00_template", owner=True), app_role=pg_spec.user)
            yield Stack(base, pg_spec, redis_spec, pg, redis_server)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database_url(stack: Stack) -> Iterator[str]:
    """A fresh database with the schema applied, dropped after the test."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(stack.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE eva00_template")
    yield stack.database_url(name)
    with psycopg.connect(stack.admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def owner_database_url(stack: Stack, database_url: str) -> str:
    """The same test database as the schema's owner (applies schema.sql, bypasses the grants)."""
    return stack.owner_url(str(conninfo_to_dict(database_url)["dbname"]))


@pytest.fixture
def redis_url(stack: Stack) -> Iterator[str]:
    """The session Redis (the app user's URL), emptied before the test (tests run one at a time)."""
    client = redis.Redis.from_url(stack.redis_admin_url)
    client.flushall()
    client.close()
    yield stack.redis_url


@pytest.fixture
def redis_client(stack: Stack, redis_url: str) -> Iterator[redis.Redis]:
    """The test's own hand on Redis: the admin user, so a test can empty it like a lost AOF."""
    client = redis.Redis.from_url(stack.redis_admin_url)
    yield client
    client.close()


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Production defaults with durations shrunk so tests run in seconds."""
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "EVA00_DATA_DIR": str(tmp_path / "data"),
        "EVA00_VAR_DIR": str(tmp_path / "var"),
        "EVA00_STREAM_BLOCK_MS": "200",
        "EVA00_CLAIM_IDLE_MS": "1000",
        "EVA00_MAX_DELIVERIES": "3",
        "EVA00_OUTAGE_BACKOFF_CAP_S": "0.5",
        "EVA00_CONNECTION_ERROR_PAUSE_S": "1",
        "EVA00_BAD_ANSWER_RETRY_S": "0.5",
    }
    return Settings.from_env(env, dotenv=None)


@pytest.fixture(autouse=True)
def _no_dotenv_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's .env must never change what tests see.
    for key in list(os.environ):
        if key.startswith(("PROCORE_", "EVA00_")) or key in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(key, raising=False)
