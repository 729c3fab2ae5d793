"""Backoff is a pure function: full jitter under a doubling curve, never above its cap."""

from __future__ import annotations

import random

import pytest

from eva00.runtime.backoff import capped_backoff_s


def test_the_ceiling_doubles_from_the_base_until_the_cap() -> None:
    ceilings = [capped_backoff_s(n, base_s=0.1, cap_s=2.0, rand=lambda: 1.0) for n in range(1, 9)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])


def test_the_wait_is_the_ceiling_scaled_by_the_injected_random_draw() -> None:
    assert capped_backoff_s(3, base_s=0.1, cap_s=30, rand=lambda: 0.25) == pytest.approx(0.1)
    assert capped_backoff_s(3, base_s=0.1, cap_s=30, rand=lambda: 0.0) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_every_wait_is_within_zero_and_its_capped_ceiling(seed: int) -> None:
    draw = random.Random(seed).random
    for attempt in range(1, 60):
        wait = capped_backoff_s(attempt, base_s=0.05, cap_s=3.0, rand=draw)
        assert 0.0 <= wait <= min(3.0, 0.05 * 2 ** (attempt - 1))


def test_waits_grow_on_average_with_the_attempt_number() -> None:
    draw = random.Random(7).random
    means = [sum(capped_backoff_s(n, cap_s=100.0, rand=draw) for _ in range(400)) / 400
             for n in (1, 3, 5, 7)]
    assert means == sorted(means) and means[-1] > 4 * means[0]


def test_no_attempt_yet_means_no_wait_and_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert capped_backoff_s(0, rand=lambda: 1.0) == 0.0
    assert capped_backoff_s(-3, rand=lambda: 1.0) == 0.0
    assert capped_backoff_s(10**6, cap_s=30.0, rand=lambda: 1.0) == 30.0
