"""The limiter across separate processes, judged by the simulator: never over the server's limit,
most of the allowed rate used while work is queued, and the webhook class served within 2 s while
three processes saturate the limiter with scheduled polling. The 90% utilisation goal itself is
measured by ``make bench`` (eva00.proof.bench.procore_limiter); here, on a CI machine running four
test workers on two cores, the floor only catches a limiter that leaves capacity idle."""

from __future__ import annotations

from collections.abc import Callable

import redis

from eva00.config import Settings
from eva00.procore.limiter import BudgetClass, LimiterConfig
from eva00.proof.bench.procore_limiter import run_workers
from eva00.simulator.testing import SimHandle
from tests.integration.test_procore_auth import sim_settings

# the server allows 20 per 2 s; the limiter keeps a margin like production (95 of 100): 17 per 2 s, 8/s
CONFIG = LimiterConfig(burst=4, refill_per_s=8.0, window_max=17, window_s=2.0, budget_window_s=2.0,
                       budgets={BudgetClass.SCHEDULED: 12, BudgetClass.WEBHOOK: 3, BudgetClass.ON_DEMAND: 3},
                       reserve_slots=1, marker_ttl_s=1.0, max_sleep_s=0.25)

# Starved workers on a loaded 2-core machine reached 87% of the allowed rate; a limiter that
# serialises its callers or loses a window falls well under two thirds.
UTILISATION_FLOOR = 0.7


def _max_in_window(times: list[float], window_s: float) -> int:
    times, best, start = sorted(times), 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_three_processes_stay_under_the_servers_limit_and_use_most_of_the_rate(
        settings: Settings, redis_client: redis.Redis, sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(rate_limit="20/2", spike="off")
    config = sim_settings(settings, sim)
    measured = run_workers(config, CONFIG, redis_client, prefix="lp", hammers=3, duration_s=6.0,
                           probe_interval_s=0.4)
    stats = sim.stats()
    api = [e for e in sim.ledger() if e["path"] != "/oauth/token"]
    assert stats["violations"] == 0 and all(e["status"] == 200 for e in api)
    # the ledger's own arrival times: never more than the server's 20 in any 2 s
    assert _max_in_window([float(e["t"]) for e in api], 2.0) <= 20  # type: ignore[arg-type]
    # Sustained rate while work is queued: over the span the server saw requests (the workers'
    # start-up, Python imports on a busy 2-core machine, is not time with work queued).
    arrivals = sorted(float(e["t"]) for e in api)  # type: ignore[arg-type]
    allowed = CONFIG.burst + CONFIG.allowed_rate_per_s * (arrivals[-1] - arrivals[0])
    assert measured["elapsed_s"] > 0 and len(api) >= UTILISATION_FLOOR * allowed, (len(api), allowed)
    webhook_waits = measured["waits_ms"]["webhook"]
    assert len(webhook_waits) >= 5 and max(webhook_waits) <= 2000, webhook_waits
    # the hammers' scheduled work took all the capacity the paced webhook probe left
    assert len(measured["waits_ms"]["scheduled"]) >= UTILISATION_FLOOR * allowed - len(webhook_waits)
