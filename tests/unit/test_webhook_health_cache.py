"""/healthz answers from a cached check: a flood of requests runs one query and one PING per
refresh period, never one each."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from eva00.webhooks.server import HEALTH_MAX_AGE_S, CachedHealth


class CountingCheck:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls, self.delay_s, self.healthy = 0, delay_s, True
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, bool]:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay_s)
        return {"postgres": self.healthy, "redis": True}


def test_the_check_runs_again_only_once_the_cached_answer_is_older_than_the_period() -> None:
    now = [100.0]
    check = CountingCheck()
    health = CachedHealth(check, max_age_s=2.0, clock=lambda: now[0])
    assert health() == {"postgres": True, "redis": True}
    check.healthy = False
    now[0] += 1.9
    assert health()["postgres"] is True and check.calls == 1
    now[0] += 0.1
    assert health()["postgres"] is False and check.calls == 2


def test_a_flood_of_concurrent_requests_runs_the_check_once() -> None:
    check = CountingCheck(delay_s=0.05)
    health = CachedHealth(check)
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda _: health(), range(500)))
    assert check.calls == 1
    assert all(a == {"postgres": True, "redis": True} for a in answers)


def test_the_refresh_period_is_a_few_seconds_at_most() -> None:
    assert 1.0 <= HEALTH_MAX_AGE_S <= 5.0


def test_a_caller_cannot_change_the_cached_answer() -> None:
    health = CachedHealth(CountingCheck(), clock=lambda: 0.0)
    health()["postgres"] = False
    assert health()["postgres"] is True
