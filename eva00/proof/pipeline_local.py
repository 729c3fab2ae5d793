"""The scheduler, fetcher and differ in one process, stepped by hand: for tests and benchmarks that
need the real pipeline against a simulator without supervisord. Production runs each stage as its
own process (processes/*.py); the code they run is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.kinds import FAMILY_KINDS
from eva00.procore import build_client
from eva00.runtime.stage import Stage
from eva00.stages.differ import Differ
from eva00.stages.fetcher import Fetcher
from eva00.stages.middleware import differ_middleware, fetcher_middleware
from eva00.stages.scheduler import Scheduler


def settings_for_simulator(settings: Settings, *, api_base: str, login_base: str, client_id: str,
                           client_secret: str, company_id: int, unlimited: bool = True) -> Settings:
    """Point Settings at a simulator; ``unlimited`` lifts our own limiter (the simulator's rate
    limits decide) and shortens waits, for runs that must finish in seconds."""
    changes: dict[str, object] = dict(
        procore_client_id=client_id, procore_client_secret=client_secret, procore_company_id=company_id,
        procore_api_base=api_base, procore_login_base=login_base, poll_safety_margin_s=0.001,
        allow_loopback_urls=True,
        poll_lookback_s=5.0, stream_block_ms=10)
    if unlimited:
        changes.update(rate_burst=500, rate_refill_per_s=500.0, rate_window_max=100_000,
                       budget_scheduled_per_min=100_000, budget_webhook_per_min=100_000,
                       budget_on_demand_per_min=100_000)
    return settings.replace(**changes)


@dataclass
class LocalPipeline:
    settings: Settings
    scheduler: Scheduler
    fetcher: Stage
    differ: Stage
    pool: ConnectionPool

    @classmethod
    def build(cls, settings: Settings, client: redis.Redis, pool: ConnectionPool) -> LocalPipeline:
        handler = Fetcher(settings, build_client(settings, client, pool), client)
        fetcher = Stage("fetcher", settings, client, pool,
                        [(keys.STREAM_SYNC_PRIORITY, keys.GROUP_FETCHERS),
                         (keys.STREAM_SYNC_SCHEDULED, keys.GROUP_FETCHERS)],
                        handler, middleware=fetcher_middleware(client, handler),
                        consumer="fetcher-local")
        differ = Stage("differ", settings, client, pool, [(keys.STREAM_PAGES, keys.GROUP_DIFFERS)],
                       Differ(settings.mass_delete_ratio), middleware=differ_middleware(client),
                       consumer="differ-local")
        for stage in (fetcher, differ):
            for stream, group in stage.inputs:
                stage.bus.ensure_group(stream, group)
        return cls(settings, Scheduler(settings, client, pool), fetcher, differ, pool)

    def drain(self, max_rounds: int = 100_000) -> None:
        """Step both stages until neither has anything left to do."""
        quiet = 0
        for _ in range(max_rounds):
            handled = self.fetcher.step() + self.differ.step()
            quiet = quiet + 1 if handled == 0 else 0
            if quiet >= 3:
                return
        raise RuntimeError("the pipeline never went quiet")

    def sync_everything(self) -> None:
        """One poll of every family: the projects first, so every project is known."""
        self.scheduler.tick_family("projects")
        self.drain()
        self.poll_cycle()

    def poll_cycle(self) -> None:
        for family in FAMILY_KINDS:
            self.scheduler.tick_family(family)
        self.drain()
