"""The sliding-window limiter with a frozen clock: exact windows, refusals, headers, reconfiguration."""

from __future__ import annotations

from eva00.simulator.options import SimOptions, Window
from eva00.simulator.ratelimit import RateLimiter

KEY = ("client", "1000")


def limiter(*windows: Window) -> RateLimiter:
    options = SimOptions(rate_limit=None, spike=None)
    options.rate_limit = windows[0] if windows else None
    options.spike = windows[1] if len(windows) > 1 else None
    return RateLimiter(options, clock=lambda: 0.0)


def test_a_window_admits_exactly_its_limit_then_refuses_until_the_oldest_expires() -> None:
    rl = limiter(Window(3, 10.0, "rate"))
    assert [rl.check(KEY, t).allowed for t in (0.0, 1.0, 2.0, 3.0)] == [True, True, True, False]
    assert rl.check(KEY, 9.99).allowed is False
    assert rl.check(KEY, 10.01).allowed is False  # the refused ones count too (default)


def test_without_counting_refusals_a_slot_frees_when_the_oldest_ages_out() -> None:
    rl = limiter(Window(2, 10.0, "rate"))
    rl.options.count_refused = False
    assert [rl.check(KEY, t).allowed for t in (0.0, 5.0, 6.0, 10.01)] == [True, True, False, True]


def test_retry_after_names_when_a_slot_frees_in_every_full_window() -> None:
    rl = limiter(Window(2, 10.0, "rate"), Window(100, 60.0, "long"))
    rl.check(KEY, 0.0)
    rl.check(KEY, 4.0)
    refused = rl.check(KEY, 5.0)
    assert refused.retry_after_s == 5 and refused.remaining == 0 and refused.limit == 2


def test_headers_describe_the_window_with_fewest_requests_left() -> None:
    rl = limiter(Window(100, 60.0, "rate"), Window(5, 10.0, "spike"))
    decision = rl.check(KEY, 100.0)
    assert decision.headers() == [
        ("X-Rate-Limit-Limit", "5"),
        ("X-Rate-Limit-Remaining", "4"),
        ("X-Rate-Limit-Reset", "110"),
    ]


def test_keys_have_separate_windows_and_figures_report_peaks() -> None:
    rl = limiter(Window(1, 10.0, "rate"))
    assert rl.check(KEY, 0.0).allowed and rl.check(("client", "2"), 0.0).allowed
    assert not rl.check(KEY, 1.0).allowed and rl.refused == 1
    rows = {r["company_id"]: r for r in rl.figures(now=1.0)}
    assert rows["1000"]["used_now"] == 2 and rows["1000"]["peak_used"] == 1


def test_limits_off_admit_everything() -> None:
    rl = limiter()
    assert all(rl.check(KEY, float(t)).allowed for t in range(1000))
