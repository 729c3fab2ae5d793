"""The PostgreSQL and Redis of one benchmark: started under its temporary directory with the
stack's own security (the schema applied by the owner role, the stages' app role and Redis user),
stopped after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eva00.ops.localstack import PostgresSpec, RedisSpec, start_postgres, start_redis
from eva00.runtime import db


@dataclass(frozen=True)
class Services:
    postgres: PostgresSpec
    redis: RedisSpec

    @property
    def database_url(self) -> str:
        """The app role's, as the stages connect."""
        return self.postgres.url

    @property
    def redis_url(self) -> str:
        """The app user's (no admin commands)."""
        return self.redis.url

    @property
    def redis_admin_url(self) -> str:
        """For what only an operator does: FLUSHALL between two runs of one benchmark."""
        return self.redis.admin_url

    def new_database(self, name: str) -> str:
        """A fresh database with the schema (dropped first if there), as the app role's URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.postgres.owner_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        db.apply_schema(self.postgres.database_url(name, owner=True), app_role=self.postgres.user)
        return self.postgres.database_url(name)


@contextmanager
def local_services(tmp_dir: Path) -> Iterator[Services]:
    pg_spec, pg = start_postgres(tmp_dir / "stack")
    redis_spec, redis_server = start_redis(tmp_dir / "stack")
    try:
        db.apply_schema(pg_spec.owner_url, app_role=pg_spec.user)
        yield Services(pg_spec, redis_spec)
    finally:
        redis_server.stop()
        pg.stop()
