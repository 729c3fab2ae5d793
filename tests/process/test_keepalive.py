"""The keepalive process keeps a refresh token alive through a simulator whose refresh tokens
expire after 3 s of inactivity, exits 0 on SIGTERM, and never writes a secret to its log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00.config import ROOT_DIR, Settings
from eva00.procore import build_authenticator
from eva00.procore.auth import Authenticator
from eva00.procore.errors import AuthHalted
from eva00.simulator.testing import SimHandle
from tests.integration.test_procore_auth import logged_in, sim_settings

pytestmark = pytest.mark.process
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{40,}")
# The simulator's refresh-token inactivity expiry: long enough that a loaded machine still starts the
# keepalive process (imports and all) before the grant dies, short against the test's length.
IDLE_EXPIRY_S = 3.0


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=2, open=True) as opened:
        yield opened


def _environment(config: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCORE_", "EVA00_"))}
    env.update({"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url,
                "PROCORE_API_BASE": config.procore_api_base, "PROCORE_LOGIN_BASE": config.procore_login_base,
                "EVA00_ALLOW_LOOPBACK_URLS": "1",
                "PROCORE_CLIENT_ID": config.procore_client_id,
                "PROCORE_CLIENT_SECRET": config.procore_client_secret,
                "PROCORE_COMPANY_ID": str(config.procore_company_id),
                "PROCORE_AUTH_MODE": "authorization_code",
                "EVA00_KEEPALIVE_INTERVAL_S": "0.5", "EVA00_HTTP_TIMEOUT_S": "10",
                "EVA00_VAR_DIR": str(config.var_dir), "PYTHONUNBUFFERED": "1"})
    return env


def _wait_for_renewals(auth: Authenticator, process: subprocess.Popen[bytes], generation: int,
                       lasting_s: float, timeout_s: float = 60.0) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        assert process.poll() is None, "the keepalive exited"
        row = auth.status()
        if row is not None and row.generation >= generation and time.monotonic() - started >= lasting_s:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {generation} renewals in {timeout_s:.0f} s: {auth.status()}")


def test_keepalive_outlives_a_short_inactivity_expiry_and_logs_no_secret(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, tmp_path: Path,
        sim_factory: Callable[..., SimHandle]) -> None:
    # The grant may idle only while the process starts, however slow the machine: the short
    # inactivity expiry is switched on once the keepalive has renewed for the first time.
    sim = sim_factory(auto_approve=True)
    config = sim_settings(settings, sim, procore_auth_mode="authorization_code")
    auth = logged_in(config, redis_client, pool, sim)
    log_path = tmp_path / "keepalive.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, str(ROOT_DIR / "processes" / "keepalive.py")],
                                   env=_environment(config), stdout=log_file, stderr=subprocess.STDOUT,
                                   cwd=str(ROOT_DIR))
    try:
        _wait_for_renewals(auth, process, generation=2, lasting_s=0)
        sim.configure(refresh_idle_expiry_s=IDLE_EXPIRY_S)
        first = auth.status()
        assert first is not None
        # More than twice the inactivity expiry, with no sync activity at all, and at least four
        # more renewals (a state, not a duration).
        _wait_for_renewals(auth, process, generation=first.generation + 4,
                           lasting_s=2 * IDLE_EXPIRY_S + 0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    row = auth.status()
    assert row is not None and row.generation >= first.generation + 4
    # the refresh token the keepalive left behind is alive (neither used nor revoked): one more
    # refresh works, however long the process took to stop
    sim.configure(refresh_idle_expiry_s=3600)
    assert auth.renew(stale_generation=row.generation).generation == row.generation + 1
    calls = [e["status"] for e in sim.ledger() if e["path"] == "/oauth/token"]
    assert calls and set(calls) == {200}
    text = log_path.read_text()
    assert "keepalive: renewed" in text
    final = auth.status()
    assert final is not None
    for secret in (final.access_token, final.refresh_token, row.refresh_token, config.procore_client_secret):
        assert secret and secret not in text
    assert not TOKEN_SHAPE.search(text)


def test_without_keepalive_the_same_inactivity_kills_the_grant(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
        sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(auto_approve=True, refresh_idle_expiry_s=IDLE_EXPIRY_S)
    config = sim_settings(settings, sim, procore_auth_mode="authorization_code")
    logged_in(config, redis_client, pool, sim)
    time.sleep(IDLE_EXPIRY_S + 0.5)
    with pytest.raises(AuthHalted):
        build_authenticator(config, redis_client, pool).renew(stale_generation=1)
