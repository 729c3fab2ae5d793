"""Every log line and error of a busy client session, at DEBUG and with urllib3's request lines,
is grepped for the secrets it handled: access and refresh tokens, the client secret, signatures."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.procore import build_client
from eva00.procore.errors import AuthHalted, ProcoreRequestFailed
from eva00.procore.tokens import TokenEndpoint
from eva00.procore.transfer import Transfer
from eva00.replica.filestore import FileStore
from eva00.runtime.logging import RedactingFilter
from eva00.simulator.testing import SimHandle
from tests.integration.test_procore_auth import logged_in, sim_settings


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=4, open=True) as opened:
        yield opened


@pytest.fixture
def captured(settings: Settings) -> Iterator[io.StringIO]:
    """The process log as runtime.setup_logging builds it, at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter([]))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_no_secret_reaches_a_log_line_or_an_error_message(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, tmp_path: Path,
        captured: io.StringIO, sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(auto_approve=True)
    config = sim_settings(settings, sim, procore_auth_mode="authorization_code")
    auth = logged_in(config, redis_client, pool, sim)
    client = build_client(config, redis_client, pool)
    client.backoff_base_s = 0.01
    secrets: list[str] = [config.procore_client_secret]
    errors: list[str] = []

    def remember() -> None:
        row = auth.status()
        if row is not None:
            secrets.extend(s for s in (row.access_token, row.refresh_token) if s)

    remember()
    client.get_json("/rest/v1.0/me", budget="scheduled")
    sim.expire_tokens()
    client.get_json("/rest/v1.0/me", budget="scheduled")  # 401, renewal, retry
    remember()
    sim.set_faults("5xx", count=1)
    client.get_json("/rest/v1.0/me", budget="scheduled")
    made = sim.new_file(3000)
    secrets.append(re.search(r"sig=([^&]+)", made["storage_url"]).group(1))  # type: ignore[union-attr]
    Transfer(client, FileStore(tmp_path)).fetch(
        made["url"], "f1", budget="scheduled")
    try:
        client.get_json("/rest/v1.0/projects/999999/rfis", budget="scheduled")
    except ProcoreRequestFailed as exc:
        errors.append(str(exc))
        logging.getLogger("test").exception("failed as expected")
    row = auth.status()
    assert row is not None and row.refresh_token
    TokenEndpoint(config).refresh(row.refresh_token)  # the refresh token dies elsewhere
    try:
        auth.renew(stale_generation=row.generation)
    except AuthHalted as exc:
        errors.append(str(exc))
        logging.getLogger("test").exception("halted as expected")
    text = captured.getvalue()
    assert "GET /rest/v1.0/me" in text and "CRITICAL" in text  # the log really saw it all
    assert "sig=[redacted]" in text  # urllib3 logged the signed URL; only the filter saved it
    assert len(secrets) >= 6
    for secret in secrets:
        assert secret not in text
        assert all(secret not in e for e in errors)
