"""Simulator fixtures: ``sim`` (a fresh small simulator per test, rate limits off),
``sim_factory`` (start one with any options: ``sim_factory(rate_limit="5/2", lenient=True)``) and
``make_pipeline`` (the in-process scheduler, fetcher and differ pointed at a simulator)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.proof.pipeline_local import LocalPipeline, settings_for_simulator
from eva00.simulator.testing import SimHandle, running_simulator

SMALL = {"projects": 3, "items": 200, "rate_limit": "off", "file_size_bytes": 4096}


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[Callable[..., SimHandle]]:
    with ExitStack() as stack:
        def start(**options: Any) -> SimHandle:
            return stack.enter_context(running_simulator(tmp_path / "sim", **{**SMALL, **options}))
        yield start


@pytest.fixture
def sim(sim_factory: Callable[..., SimHandle]) -> SimHandle:
    return sim_factory()


@pytest.fixture
def make_pipeline(settings: Settings,
                  redis_client: redis.Redis) -> Iterator[Callable[[SimHandle], LocalPipeline]]:
    pools: list[ConnectionPool] = []

    def make(sim: SimHandle) -> LocalPipeline:
        configured = settings_for_simulator(settings, api_base=sim.api_base, login_base=sim.login_base,
                                            client_id=sim.client_id, client_secret=sim.client_secret,
                                            company_id=sim.company_id)
        pool = ConnectionPool(configured.effective_database_url, min_size=1, max_size=4, open=True)
        pools.append(pool)
        return LocalPipeline.build(configured, redis_client, pool)

    yield make
    for pool in pools:
        pool.close()
