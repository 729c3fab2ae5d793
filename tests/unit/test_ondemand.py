"""`eva00 sync` turns an entity, projects and an id into priority jobs on the on-demand budget."""

from __future__ import annotations

import pytest

from eva00.cli.sync import build_jobs, kinds_for
from eva00.messages import PollMode


def test_a_family_name_expands_to_its_kinds() -> None:
    assert kinds_for("change_orders") == ("change_event", "change_order_package",
                                          "potential_change_order", "prime_change_order")
    assert kinds_for("rfi") == ("rfi",)


def test_an_unknown_entity_is_refused_with_the_known_families() -> None:
    with pytest.raises(ValueError, match=r"unknown entity 'rfiz'.*submittals"):
        kinds_for("rfiz")


def test_jobs_go_to_each_project_on_the_on_demand_budget() -> None:
    jobs = build_jobs(["rfi"], [1, 2], None, now=5.0)
    assert [(j.kind, j.project_id, j.mode, j.budget, j.requested_at) for j in jobs] == [
        ("rfi", 1, PollMode.INCREMENTAL, "on_demand", 5.0),
        ("rfi", 2, PollMode.INCREMENTAL, "on_demand", 5.0)]


def test_one_record_is_an_item_job() -> None:
    (job,) = build_jobs(["rfi"], [1], 77, now=0.0)
    assert (job.mode, job.item_id) == (PollMode.ITEM, 77)


def test_company_level_kinds_need_no_project() -> None:
    assert [j.project_id for j in build_jobs(["vendor"], [], None, now=0.0)] == [None]


@pytest.mark.parametrize(("kinds", "projects", "item", "problem"), [
    (["rfi"], [], None, "give --project"),
    (["rfi", "submittal"], [1], 5, "single kind"),
    (["rfi"], [1, 2], 5, "at most one --project"),
])
def test_incomplete_requests_are_refused_clearly(kinds: list[str], projects: list[int], item: int | None,
                                                 problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        build_jobs(kinds, projects, item, now=0.0)
