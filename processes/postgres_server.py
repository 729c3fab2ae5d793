"""supervisord program: the embedded PostgreSQL (initdb once, then exec postgres)."""

from eva00.config import load_or_exit
from eva00.ops.localstack import PostgresSpec

settings = load_or_exit()
PostgresSpec(settings.var_dir / "pg", settings.embedded_pg_port).exec()
