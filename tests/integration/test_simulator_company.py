"""A realistic company in the simulator: busy, quiet and closed projects, the project list's
documented status filter, the churn's skew and rate limits on a faster clock."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import requests

from eva00.simulator import company
from eva00.simulator.company import Activity
from eva00.simulator.options import OptionError, SimOptions
from eva00.simulator.state import SimState
from eva00.simulator.testing import SimulatorFailed, running_simulator


def test_the_project_list_shows_open_projects_unless_inactive_or_all_are_asked_for(tmp_path: Path) -> None:
    with running_simulator(tmp_path, projects=10, items=400, active_share=0.2, inactive_share=0.3,
                           rate_limit="off") as sim:
        client = requests.Session()
        client.headers.update(sim.headers())

        def listed(status: str | None) -> list[dict[str, object]]:
            params: dict[str, object] = {"company_id": sim.company_id}
            if status:
                params["filters[by_status]"] = status
            answer = client.get(sim.api_base + "/rest/v1.1/projects", params=params, timeout=30)
            answer.raise_for_status()
            return list(answer.json())

        default, inactive, every = listed(None), listed("Inactive"), listed("All")
        assert len(default) == 7 and all(p["active"] is True for p in default)
        assert len(inactive) == 3 and all(p["active"] is False for p in inactive)
        assert sorted(p["id"] for p in every) == sorted(p["id"] for p in default + inactive)
        activity = sim.stats()["activity"]
        assert (activity["active"], activity["quiet"], activity["closed"]) == (2, 5, 3)
        # a closed project's records stay readable
        closed = inactive[0]["id"]
        answer = client.get(sim.api_base + f"/rest/v1.0/projects/{closed}/rfis", timeout=30)
        assert answer.status_code == 200 and answer.json()


def test_the_busy_projects_get_their_share_of_the_churn_and_closed_ones_none() -> None:
    activity = Activity(active=(1, 2), quiet=(3, 4, 5, 6), closed=(7,), active_churn_share=0.8)
    rng = random.Random(5)
    picked = Counter(activity.churn_project(rng) for _ in range(5000))
    busy = picked[1] + picked[2]
    assert 0.77 < busy / 5000 < 0.83 and 7 not in picked
    alike = Activity(active=(1, 2, 3), quiet=(), closed=(), active_churn_share=0.8)
    assert alike.churn_project(rng) is None  # the default company: any project, as before


def test_a_faster_clock_shortens_every_rate_window_and_keeps_its_count(tmp_path: Path) -> None:
    with running_simulator(tmp_path, projects=2, items=100, rate_limit="100/60", spike="25/10",
                           time_scale=60) as sim:
        assert sim.configure()["rate_limit"] == "100/1"
        # a window set at run time is Procore's too, on the same faster clock
        assert sim.configure(spike="20/10")["spike"] == "20/0.166667"


def test_a_company_that_cannot_exist_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SimulatorFailed, match="must not exceed 1"), \
            running_simulator(tmp_path, projects=4, items=100, active_share=0.7, inactive_share=0.5):
        pass
    options = SimOptions(projects=3, items=100, time_scale=0)
    with pytest.raises(OptionError, match="time-scale"):
        company.check(options)


def test_two_hundred_projects_are_generated_with_every_kind_in_each() -> None:
    options = SimOptions(projects=200, items=10_000, active_share=0.2, inactive_share=0.4)
    state = SimState(options, "http://127.0.0.1:1", "http://127.0.0.1:2")
    assert len(state.store.projects()) == 200
    figures = state.figures()["activity"]
    assert (figures["active"], figures["closed"], figures["quiet"]) == (40, 80, 80)
    project = state.activity.quiet[0]
    assert state.store.live("rfi", project) and state.store.live("daily_log_header", project)
