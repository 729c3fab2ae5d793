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


def test_the_next_poll_takes_the_lag_off_twice_so_a_change_waits_about_one_interval() -> None:
    from datetime import UTC, datetime, timedelta

    from eva00.replica.plans import next_poll_at

    due = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    finished = due + timedelta(seconds=20)  # queued and fetched for 20 s
    assert next_poll_at(finished, due, 300) == finished + timedelta(seconds=260)
    # this poll's window ended about when it started (20 s before it finished); the next poll lags
    # as much, so a change made just after that window is stored 300 s later
    window_end = finished - timedelta(seconds=20)
    assert next_poll_at(finished, due, 300) + timedelta(seconds=20) - window_end == timedelta(seconds=300)
    assert next_poll_at(finished, None, 300) == finished + timedelta(seconds=300)
    late = due + timedelta(seconds=900)  # a long outage: at most a quarter interval comes off
    assert next_poll_at(late, due, 300) == late + timedelta(seconds=150)


def test_a_polls_cost_counts_the_shows_of_changed_records_where_the_show_adds_content() -> None:
    from datetime import UTC, datetime

    from eva00.replica.plans import FinishedPoll, poll_cost

    at = datetime(2026, 12, 6, tzinfo=UTC)
    assert poll_cost(FinishedPoll("rfi", 7, at, pages=1, changed=3, full_sync=False)) == 4
    assert poll_cost(FinishedPoll("image", 7, at, pages=2, changed=3, full_sync=False)) == 2
    assert poll_cost(FinishedPoll("meeting", 7, at, pages=0, changed=0, full_sync=False)) == 1
