"""The shared limiter on a real Redis: the window cap holds under contention, a full sync alone
borrows the whole rate, waiting webhook requests jump the queue, and pauses hold everyone."""

from __future__ import annotations

import threading
import time

import redis

from eva00.procore.keys import ProcoreKeys
from eva00.procore.limiter import BudgetClass, LimiterConfig, LimiterTimeout, RateLimiter

SCHED, HOOK = BudgetClass.SCHEDULED, BudgetClass.WEBHOOK


def _config(**overrides: object) -> LimiterConfig:
    values: dict[str, object] = dict(
        burst=3, refill_per_s=10.0, window_max=8, window_s=1.0,
        budgets={SCHED: 4, HOOK: 2, BudgetClass.ON_DEMAND: 2}, budget_window_s=1.0,
        reserve_slots=1, marker_ttl_s=0.6, max_sleep_s=0.2)
    values.update(overrides)
    return LimiterConfig(**values)  # type: ignore[arg-type]


def _limiter(client: redis.Redis, config: LimiterConfig, name: str = "t") -> RateLimiter:
    return RateLimiter(client, config, keys=ProcoreKeys(name))


def _hammer(client: redis.Redis, config: LimiterConfig, budget: BudgetClass, stop: threading.Event,
            times: list[float]) -> threading.Thread:
    limiter = _limiter(client, config)

    def run() -> None:
        while not stop.is_set():
            limiter.acquire(budget)
            times.append(time.monotonic())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _max_in_any_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_three_contending_limiters_never_pass_the_window_cap_and_use_the_rate(
        redis_client: redis.Redis) -> None:
    config = _config()
    stop, times = threading.Event(), []  # type: ignore[var-annotated]
    threads = [_hammer(redis_client, config, SCHED, stop, times) for _ in range(3)]
    time.sleep(3.0)
    stop.set()
    for thread in threads:
        thread.join(2)
    # local timestamps trail the server's grant time by a few ms: judge windows a little shorter
    assert _max_in_any_window(times, config.window_s - 0.02) <= config.window_max
    # alone, the full sync borrows beyond its budget of 4 up to the cap less the reserve
    assert len(times) >= 0.9 * (config.window_max - config.reserve_slots) * 3.0


def test_the_bucket_spaces_grants_at_the_refill_rate_after_the_burst(redis_client: redis.Redis) -> None:
    config = _config(window_max=50, reserve_slots=1, refill_per_s=5.0)
    asked_s: list[float] = []  # the waits the limiter asked for: a busy machine can only shorten them

    def sleep(seconds: float) -> None:
        asked_s.append(seconds)
        time.sleep(seconds)

    limiter = RateLimiter(redis_client, config, keys=ProcoreKeys("t"), sleep=sleep)
    started = time.monotonic()
    assert [limiter.acquire(SCHED).attempts for _ in range(3)] == [1, 1, 1]  # the burst
    assert asked_s == []
    for _ in range(3):
        limiter.acquire(SCHED)
    assert time.monotonic() - started >= 0.5  # three more at 5 per second
    assert 0 < sum(asked_s) < 0.7, asked_s  # about 0.2 s each on a quiet machine, never more


def test_a_webhook_waiting_behind_a_saturated_full_sync_gets_the_next_token(
        redis_client: redis.Redis) -> None:
    # slow refill, four scheduled hammers: without priority a webhook would wait about 4 / 2 = 2 s
    config = _config(burst=2, refill_per_s=2.0, window_max=6, window_s=2.0, budget_window_s=2.0,
                     budgets={SCHED: 4, HOOK: 2, BudgetClass.ON_DEMAND: 2})
    stop, sched_times = threading.Event(), []  # type: ignore[var-annotated]
    threads = [_hammer(redis_client, config, SCHED, stop, sched_times) for _ in range(4)]
    time.sleep(1.5)
    webhook = _limiter(redis_client, config)
    waits = []
    for _ in range(2):
        waits.append(webhook.acquire(HOOK).waited_s)
        time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(3)
    assert max(waits) <= 1 / config.refill_per_s + 0.25, waits
    assert len(sched_times) > 4  # the full sync was really saturating


def test_a_webhook_flood_beyond_its_budget_does_not_starve_scheduled_polling(
        redis_client: redis.Redis) -> None:
    config = _config(burst=2, refill_per_s=4.0, window_max=10, window_s=2.0, budget_window_s=2.0,
                     budgets={SCHED: 4, HOOK: 1, BudgetClass.ON_DEMAND: 1}, reserve_slots=1)
    stop, hook_times = threading.Event(), []  # type: ignore[var-annotated]
    threads = [_hammer(redis_client, config, HOOK, stop, hook_times) for _ in range(3)]
    time.sleep(1.0)
    scheduled = _limiter(redis_client, config)
    waits = [scheduled.acquire(SCHED).waited_s for _ in range(3)]
    stop.set()
    for thread in threads:
        thread.join(3)
    # scheduled is within its budget, the webhooks borrow: scheduled is served at the bucket pace
    assert max(waits) <= 1 / config.refill_per_s + 0.25, waits
    assert len(hook_times) > 2


def test_a_pause_holds_every_class_and_a_reset_bucket_resumes_without_a_burst(
        redis_client: redis.Redis) -> None:
    config = _config(window_max=50, refill_per_s=10.0, burst=5)
    limiter = _limiter(redis_client, config)
    other = _limiter(redis_client, config)
    limiter.pause(0.5, "test", reset_bucket=True)
    assert 0.3 < other.paused_for_s() <= 0.5
    started = time.monotonic()
    other.acquire(HOOK)
    assert time.monotonic() - started >= 0.45  # paused, then one refill step
    for _ in range(2):
        other.acquire(SCHED)
    # no burst of 5 after the pause: each further grant waited for the refill
    assert time.monotonic() - started >= 0.45 + 2 / config.refill_per_s - 0.03


def test_a_later_pause_is_never_shortened_by_an_earlier_one(redis_client: redis.Redis) -> None:
    limiter = _limiter(redis_client, _config())
    long_end = limiter.pause(5.0, "429")
    assert limiter.pause(0.1, "slow down") == long_end
    assert limiter.paused_for_s() > 4.5


def test_a_deadline_shorter_than_the_wait_raises_and_withdraws_the_claim(redis_client: redis.Redis) -> None:
    limiter = _limiter(redis_client, _config())
    limiter.pause(2.0, "test")
    started = time.monotonic()
    try:
        limiter.acquire(HOOK, timeout_s=0.3)
    except LimiterTimeout as exc:
        assert exc.reason == "pause"
    else:
        raise AssertionError("acquire should have given up")
    assert time.monotonic() - started < 0.5
    assert redis_client.zcard(ProcoreKeys("t").rate_waiting) == 0
