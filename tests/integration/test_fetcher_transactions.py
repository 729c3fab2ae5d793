"""The fetcher holds no PostgreSQL transaction while it waits: a fetcher stuck behind the rate
limiter (its budget drained by a tiny configuration) shows in pg_stat_activity with no session in
a transaction and has no connection checked out of its pool, and the job still ends with its page
forwarded once the limiter lets the request through."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.messages import BudgetClass, PageMessage, PollJob, PollMode, decode
from eva00.procore import build_client
from eva00.procore.keys import DEFAULT_KEYS
from eva00.procore.limiter import LimiterConfig, RateLimiter
from eva00.proof.pipeline_local import settings_for_simulator
from eva00.runtime.stage import Stage
from eva00.simulator.testing import SimHandle
from eva00.stages.fetcher import Fetcher
from eva00.stages.middleware import fetcher_middleware

APP = "fetcher-under-test"
REFILL_PER_S = 0.25  # one token every 4 s: the job's list call waits that long once the burst is gone


@pytest.fixture
def slow_settings(settings: Settings, sim: SimHandle) -> Settings:
    configured = settings_for_simulator(settings, api_base=sim.api_base, login_base=sim.login_base,
                                        client_id=sim.client_id, client_secret=sim.client_secret,
                                        company_id=sim.company_id, unlimited=False)
    return configured.replace(rate_burst=1, rate_refill_per_s=REFILL_PER_S)


@pytest.fixture
def fetcher_pool(slow_settings: Settings) -> Iterator[ConnectionPool]:
    with ConnectionPool(slow_settings.effective_database_url, min_size=2, max_size=4, open=True,
                        kwargs={"application_name": APP}) as pool:
        pool.wait()
        yield pool


def _sessions(database_url: str) -> list[tuple[str, str | None]]:
    """(state, query) of the fetcher's sessions, as another session sees them."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT state, query FROM pg_stat_activity WHERE application_name = %s",
                            (APP,)).fetchall()
    return [(str(state), query) for state, query in rows]


def _checked_out(pool: ConnectionPool) -> int:
    stats = pool.get_stats()
    return int(stats["pool_size"]) - int(stats["pool_available"])


def test_a_fetcher_waiting_on_the_rate_limiter_holds_no_transaction_and_no_connection(
        sim: SimHandle, slow_settings: Settings, fetcher_pool: ConnectionPool,
        redis_client: redis.Redis) -> None:
    project_id = next(r["id"] for r in sim.truth()["records"] if r["kind"] == "project")
    handler = Fetcher(slow_settings, build_client(slow_settings, redis_client, fetcher_pool), redis_client)
    stage = Stage("fetcher", slow_settings, redis_client, fetcher_pool,
                  [(keys.STREAM_SYNC_SCHEDULED, keys.GROUP_FETCHERS)], handler,
                  middleware=fetcher_middleware(redis_client, handler), consumer="fetcher-test")
    stage.bus.ensure_group(keys.STREAM_SYNC_SCHEDULED, keys.GROUP_FETCHERS)
    stage.bus.publish(keys.STREAM_SYNC_SCHEDULED, PollJob(
        kind="change_event", project_id=project_id, mode=PollMode.INCREMENTAL,
        budget=BudgetClass.SCHEDULED, reason="test", requested_at=time.time()))
    limiter = RateLimiter(redis_client, LimiterConfig.from_settings(slow_settings))
    limiter.acquire(BudgetClass.SCHEDULED, timeout_s=10)  # the burst: the fetcher's call must wait

    stepped: list[int] = []
    worker = threading.Thread(target=lambda: stepped.append(stage.step()), daemon=True)
    worker.start()
    samples: list[tuple[bool, list[tuple[str, str | None]], int]] = []
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and worker.is_alive():
        waiting = redis_client.zcard(DEFAULT_KEYS.rate_waiting) > 0
        samples.append((waiting, _sessions(slow_settings.effective_database_url), _checked_out(fetcher_pool)))
        time.sleep(0.05)
    waited = [(sessions, out) for waiting, sessions, out in samples if waiting]
    assert waited, f"the fetcher never waited on the limiter ({len(samples)} samples)"
    for sessions, out in waited:
        assert [s for s in sessions if s[0] != "idle"] == [], "a session is busy or in a transaction"
        assert out == 0, "a connection is checked out of the pool while the fetcher waits"

    worker.join(timeout=60)
    assert not worker.is_alive() and stepped == [1]
    assert stage.stats.handled == 1 and stage.stats.failed == 0
    pages = [decode(fields) for _id, fields in redis_client.xrange(keys.STREAM_PAGES)]
    assert [(p.kind, p.project_id, p.page) for p in pages if isinstance(p, PageMessage)] == [
        ("change_event", project_id, 1)]
