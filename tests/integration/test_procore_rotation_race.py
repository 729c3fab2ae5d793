"""Eight processes force a renewal of the same generation at once, several times over: exactly one
token call per generation, never an invalid_grant, every process ends on the new token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.simulator.testing import SimHandle
from tests.integration.test_procore_auth import logged_in, sim_settings

PROCESSES = 8
ROUNDS = 3

WORKER = """
import json, sys, time
import redis
from psycopg_pool import ConnectionPool
from eva00.config import Settings
from eva00.procore import build_authenticator

fields, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
settings = Settings(**fields)
client = redis.Redis.from_url(settings.redis_url)
with ConnectionPool(settings.database_url, min_size=1, max_size=1, open=True) as pool:
    auth = build_authenticator(settings, client, pool)
    client.rpush("race:ready", 1)
    for number in range(rounds):
        while (stale := client.get(f"race:go:{number}")) is None:
            time.sleep(0.002)
        token = auth.renew(stale_generation=int(stale))
        client.rpush(f"race:done:{number}", json.dumps({"generation": token.generation}))
"""


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=2, open=True) as opened:
        yield opened


def _wait_len(client: redis.Redis, key: str, count: int, timeout_s: float = 30.0) -> list[bytes]:
    deadline = time.monotonic() + timeout_s
    while client.llen(key) < count:
        assert time.monotonic() < deadline, f"{key}: {client.llen(key)} of {count}"
        time.sleep(0.01)
    return list(client.lrange(key, 0, -1))


def test_eight_processes_forcing_expiry_at_once_make_one_token_call_per_generation(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
        sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(auto_approve=True)
    config = sim_settings(settings, sim, procore_auth_mode="authorization_code")
    auth = logged_in(config, redis_client, pool, sim)
    fields = {name: getattr(config, name) for name in (
        "procore_api_base", "procore_login_base", "procore_client_id", "procore_client_secret",
        "procore_company_id", "procore_auth_mode", "database_url", "redis_url", "http_timeout_s",
        "allow_loopback_urls")}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(fields), str(ROUNDS)])
               for _ in range(PROCESSES)]
    try:
        _wait_len(redis_client, "race:ready", PROCESSES, timeout_s=60)
        for number in range(ROUNDS):
            row = auth.status()
            assert row is not None
            redis_client.set(f"race:go:{number}", row.generation)  # "this generation is expired"
            done = _wait_len(redis_client, f"race:done:{number}", PROCESSES)
            assert {json.loads(item)["generation"] for item in done} == {row.generation + 1}
        for worker in workers:
            assert worker.wait(30) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    calls = [e for e in sim.ledger() if e["path"] == "/oauth/token"]
    assert [e["status"] for e in calls] == [200] * (1 + ROUNDS)  # the login, then one per round
    final = auth.status()
    assert final is not None and final.generation == 1 + ROUNDS and final.last_error is None
