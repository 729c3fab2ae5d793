"""The limiter's configuration from Settings: budgets scale with a shrunk window, the reserve
never takes the refill rate away from a full sync."""

from __future__ import annotations

import pytest

from eva00.config import Settings
from eva00.procore.limiter import BudgetClass, LimiterConfig, default_reserve


def test_production_defaults_give_the_seed_budgets_and_a_reserve_within_the_headroom() -> None:
    config = LimiterConfig.from_settings(Settings())
    assert (config.burst, config.refill_per_s, config.window_max, config.window_s) == (8, 1.58, 95, 60.0)
    assert config.budgets == {BudgetClass.SCHEDULED: 60, BudgetClass.WEBHOOK: 15, BudgetClass.ON_DEMAND: 15}
    # 95 in the window, 94.8 per minute from the bucket: one slot of headroom is what the reserve
    # may take without slowing a full sync below the refill rate (webhooks also jump the queue)
    assert config.reserve_slots == 1
    assert config.allowed_rate_per_s == 1.58
    # any 10 s: the burst plus ten seconds of refill stays under Procore's 25-per-10-s spike limit
    assert config.burst + 10 * config.refill_per_s < 25


def test_budgets_shrink_with_a_test_window() -> None:
    settings = Settings(rate_window_s=2.0, rate_window_max=10, rate_refill_per_s=4.0, rate_burst=3)
    config = LimiterConfig.from_settings(settings)
    assert config.budgets[BudgetClass.SCHEDULED] == 2
    assert config.budgets[BudgetClass.WEBHOOK] == 1  # never zero
    assert config.budget_window_s == 2.0
    assert config.reserve_slots == 1
    assert config.allowed_rate_per_s == 4.0


@pytest.mark.parametrize(("window_max", "refill", "window_s", "buffer", "expected"), [
    (95, 1.5, 60.0, 10, 5),  # headroom 5 < buffer 10
    (100, 1.0, 60.0, 10, 10),  # buffer 10 < headroom 40
    (90, 2.0, 60.0, 10, 1),  # the window binds: keep one slot anyway
    (2, 10.0, 1.0, 5, 1),  # never the whole window
])
def test_the_reserve_is_the_buffer_capped_by_the_headroom_above_the_refill_rate(
        window_max: int, refill: float, window_s: float, buffer: float, expected: int) -> None:
    assert default_reserve(window_max, refill, window_s, buffer) == expected


def test_a_reserve_as_large_as_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="reserve_slots"):
        LimiterConfig(window_max=5, reserve_slots=5)
