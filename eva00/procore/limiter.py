"""One rate limiter shared by every process that calls Procore, kept in Redis.

A token bucket (burst, refill per second) plus a hard cap of ``window_max`` grants in any sliding
``window_s``, decided atomically by a Lua script on Redis server time, so a burst at a window edge
can never cross the cap and process clocks never matter.

Budgets: each class (scheduled, webhook, on-demand) owns a share of grants per budget window. A
class alone may borrow the whole rate, but a waiting class leaves a marker, and the next token goes
to the class that deserves it more: one within its budget beats one borrowing, and among equals
webhook and on-demand beat scheduled. Borrowers also leave ``reserve_slots`` of the window free,
so a webhook waiting behind a saturated full sync gets the next token of the bucket (within
1 / refill seconds), never a window-edge stall.

A shared pause (429, Retry-After, a connection error, the server's headers nearly exhausted) holds
every process until it ends; a connection error also empties the bucket.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import redis

from eva00.config import Settings
from eva00.messages import BudgetClass
from eva00.procore import limiter_lua
from eva00.procore.keys import DEFAULT_KEYS, ProcoreKeys

CLASSES = (BudgetClass.SCHEDULED, BudgetClass.WEBHOOK, BudgetClass.ON_DEMAND)
PRIORITY = {BudgetClass.SCHEDULED: 0, BudgetClass.WEBHOOK: 1, BudgetClass.ON_DEMAND: 1}
US_PER_S = 1_000_000


@dataclass(frozen=True)
class LimiterConfig:
    burst: int = 8
    refill_per_s: float = 1.58
    window_max: int = 95
    window_s: float = 60.0
    # grants each class owns per budget window
    budgets: Mapping[BudgetClass, int] = field(default_factory=lambda: {
        BudgetClass.SCHEDULED: 60, BudgetClass.WEBHOOK: 15, BudgetClass.ON_DEMAND: 15})
    budget_window_s: float = 60.0
    reserve_slots: int = 5
    marker_ttl_s: float = 2.0  # a waiter that stops asking loses its claim after this long
    max_sleep_s: float = 0.5  # a waiter asks again at least this often (renews its marker)

    def __post_init__(self) -> None:
        if not 0 <= self.reserve_slots < self.window_max:
            raise ValueError("reserve_slots must be below window_max")
        if self.max_sleep_s * 2 > self.marker_ttl_s:
            raise ValueError("marker_ttl_s must be at least twice max_sleep_s")

    @property
    def allowed_rate_per_s(self) -> float:
        """The sustained rate this configuration allows."""
        return min(self.refill_per_s, self.window_max / self.window_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> LimiterConfig:
        """Budgets are per minute in Settings; they scale to the rate window (a shrunk test window
        shrinks them too). The reserve is the buffer budget, but never more than the window's
        headroom above the refill rate, so a full sync alone still uses the whole refill rate."""
        scale = settings.rate_window_s / 60.0
        budgets = budgets_per_min(settings)
        return cls(
            burst=settings.rate_burst,
            refill_per_s=settings.rate_refill_per_s,
            window_max=settings.rate_window_max,
            window_s=settings.rate_window_s,
            budgets={k: max(1, math.ceil(v * scale)) for k, v in budgets.items()},
            budget_window_s=settings.rate_window_s,
            reserve_slots=default_reserve(settings.rate_window_max, settings.rate_refill_per_s,
                                          settings.rate_window_s,
                                          settings.budget_buffer_per_min * scale),
        )


def budgets_per_min(settings: Settings) -> dict[BudgetClass, int]:
    """The grants per minute each class owns, as configured (before scaling to the rate window)."""
    return {
        BudgetClass.SCHEDULED: settings.budget_scheduled_per_min,
        BudgetClass.WEBHOOK: settings.budget_webhook_per_min,
        BudgetClass.ON_DEMAND: settings.budget_on_demand_per_min,
    }


def default_reserve(window_max: int, refill_per_s: float, window_s: float, buffer: float) -> int:
    headroom = window_max - math.floor(refill_per_s * window_s)
    return max(1, min(math.ceil(buffer), headroom, window_max - 1))


@dataclass(frozen=True)
class Grant:
    budget: BudgetClass
    waited_s: float
    attempts: int


@dataclass(frozen=True)
class Decision:
    granted: bool
    wait_s: float
    reason: str  # ok | pause | yield | bucket | window


class LimiterTimeout(Exception):
    """No token within the caller's deadline."""

    def __init__(self, budget: BudgetClass, waited_s: float, reason: str) -> None:
        super().__init__(f"no {budget.value} token after {waited_s:.1f} s ({reason})")
        self.budget, self.waited_s, self.reason = budget, waited_s, reason


def requester_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RateLimiter:
    def __init__(self, client: redis.Redis, config: LimiterConfig, *,
                 keys: ProcoreKeys = DEFAULT_KEYS, requester: str | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.redis = client
        self.config = config
        self.keys = keys
        self.requester = requester or requester_id()
        self.sleep = sleep
        self.monotonic = monotonic
        self._acquire = client.register_script(limiter_lua.ACQUIRE)
        self._pause = client.register_script(limiter_lua.PAUSE)

    def try_acquire(self, budget: BudgetClass | str) -> Decision:
        """One atomic attempt; a refusal registers this requester as waiting for its class."""
        budget = BudgetClass(budget)
        cfg = self.config
        args: list[float | int | str] = [
            CLASSES.index(budget) + 1, self.requester, cfg.burst, cfg.refill_per_s, cfg.window_max,
            round(cfg.window_s * US_PER_S), round(cfg.budget_window_s * US_PER_S), cfg.reserve_slots,
            round(cfg.marker_ttl_s * US_PER_S), round(US_PER_S / cfg.refill_per_s / 4)]
        for cls in CLASSES:
            args += [cfg.budgets[cls], PRIORITY[cls]]
        keys = [self.keys.rate_bucket, self.keys.rate_window, self.keys.rate_waiting,
                self.keys.pause_until, self.keys.rate_seq, *(self.keys.rate_used(c.value) for c in CLASSES)]
        granted, wait_us, reason = self._acquire(keys=keys, args=args)
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        return Decision(bool(granted), int(wait_us) / US_PER_S, reason)

    def acquire(self, budget: BudgetClass | str, *, timeout_s: float | None = None) -> Grant:
        """Block until a token of ``budget`` is granted (or raise LimiterTimeout)."""
        budget = BudgetClass(budget)
        started = self.monotonic()
        attempts = 0
        while True:
            attempts += 1
            decision = self.try_acquire(budget)
            waited = self.monotonic() - started
            if decision.granted:
                return Grant(budget, waited, attempts)
            if timeout_s is not None and waited + decision.wait_s > timeout_s:
                self.withdraw(budget)
                raise LimiterTimeout(budget, waited, decision.reason)
            self.sleep(min(decision.wait_s, self.config.max_sleep_s))

    def withdraw(self, budget: BudgetClass | str) -> None:
        """Drop this requester's waiting marker (it gave up)."""
        self.redis.zrem(self.keys.rate_waiting, f"{CLASSES.index(BudgetClass(budget)) + 1}|{self.requester}")

    def pause(self, delay_s: float, reason: str, *, reset_bucket: bool = False) -> float:
        """Hold every process for ``delay_s`` from now (server time); returns the end, epoch s."""
        until_us = self._pause(keys=[self.keys.pause_until, self.keys.pause_reason, self.keys.rate_bucket],
                               args=[max(1, round(delay_s * US_PER_S)), reason, "1" if reset_bucket else "0"])
        return int(until_us) / US_PER_S

    def window_count(self) -> int:
        """Grants of every process within the last rate window, on Redis server time."""
        seconds, micros = self.redis.time()
        now_us = seconds * US_PER_S + micros
        return int(self.redis.zcount(self.keys.rate_window, now_us - round(self.config.window_s * US_PER_S),
                                     "+inf"))

    def paused_for_s(self) -> float:
        """Seconds left of the shared pause (0 when none), on Redis server time."""
        raw = self.redis.get(self.keys.pause_until)
        if raw is None:
            return 0.0
        seconds, micros = self.redis.time()
        return max(0.0, (int(raw) - (seconds * US_PER_S + micros)) / US_PER_S)
