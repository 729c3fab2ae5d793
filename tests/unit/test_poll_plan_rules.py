"""The adaptive schedule's rules: a changing pair at its family's interval, a quiet one less often
up to the maximum staleness, an inactive project at that staleness."""

from __future__ import annotations

from eva00.replica.plans import ACTIVE_PROJECT_CAP, PlanRules

RULES = PlanRules(max_staleness_s=86400.0, active_window_s=86400.0)


def test_a_pair_that_changed_recently_is_polled_at_its_familys_interval() -> None:
    assert RULES.interval_s(300, quiet_polls=5, pair_active=True, project_active=True) == 300


def test_each_quiet_poll_doubles_the_interval_up_to_the_maximum_staleness() -> None:
    intervals = [RULES.interval_s(300, quiet_polls=n, pair_active=False, project_active=False)
                 for n in range(12)]
    assert intervals[:5] == [300, 600, 1200, 2400, 4800]
    assert intervals[-1] == 86400 and max(intervals) == 86400
    assert intervals == sorted(intervals)


def test_a_quiet_kind_of_an_active_project_waits_at_most_a_few_intervals() -> None:
    assert RULES.interval_s(300, quiet_polls=20, pair_active=False,
                            project_active=True) == 300 * ACTIVE_PROJECT_CAP


def test_an_inactive_project_is_polled_once_per_maximum_staleness_even_when_it_changed() -> None:
    assert RULES.interval_s(300, quiet_polls=0, pair_active=True, project_active=True,
                            project_open=False) == 86400


def test_a_family_interval_longer_than_the_staleness_limit_is_kept() -> None:
    assert RULES.interval_s(172800, quiet_polls=3, pair_active=False, project_active=False) == 172800
