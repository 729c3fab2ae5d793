"""Which record an event re-fetches, and which triggers `register` subscribes to."""

from __future__ import annotations

import pytest

from eva00.keys import webhook_debounce_key as debounce_key
from eva00.kinds import KIND_TABLE
from eva00.webhooks.events import parse
from eva00.webhooks.intake import Target, route
from eva00.webhooks.resources import RESOURCE_KINDS, SEED_TRIGGERS, wanted_triggers
from tests.unit.test_webhook_events import v2, v4

COMPANY = 1357


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(v2(), Target("rfi", 2468, 54321), id="project resource"),
        pytest.param(v4(company_id=str(COMPANY)), Target("rfi", 6778, 379913), id="v4"),
        pytest.param(v2(resource_name="Company Vendors", project_id=None, resource_id=9),
                     Target("vendor", None, 9), id="company resource"),
        pytest.param(v2(resource_name="Projects", project_id=2468, resource_id=2468),
                     Target("project", None, 2468), id="a project itself"),
        pytest.param(v2(resource_name="Project Files", resource_id=5),
                     Target("document", 2468, 5), id="documents"),
        pytest.param(v2(api_version="v3.0", resource_name="RFI Replies", resource_id=77,
                        related_resources=[{"id": 54321, "name": "RFIs"}]),
                     Target("rfi", 2468, 54321), id="a reply re-fetches its RFI"),
    ],
)
def test_events_of_replicated_resources_target_one_record(document: dict, expected: Target) -> None:
    assert route(parse(document), COMPANY) == expected


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        pytest.param(v2(company_id=999), "company 999 is not ours", id="other company"),
        pytest.param(v2(resource_name="Punch Items"), "resource 'Punch Items' is not replicated",
                     id="unknown resource"),
        pytest.param(v2(project_id=None), "RFIs event has no project_id", id="no project"),
        pytest.param(v2(resource_name="RFI Replies"), "RFI Replies event names no RFI id",
                     id="reply without its RFI"),
    ],
)
def test_events_without_a_record_to_fetch_say_why(document: dict, reason: str) -> None:
    assert route(parse(document), COMPANY) == reason


def test_every_resource_maps_to_a_kind_the_replica_stores() -> None:
    assert set(RESOURCE_KINDS.values()) <= set(KIND_TABLE)


def test_registration_subscribes_to_the_seed_triggers_first_and_to_deletes() -> None:
    wanted = wanted_triggers()
    assert wanted[: len(SEED_TRIGGERS)] == list(SEED_TRIGGERS)
    assert ("RFIs", "delete") in wanted and ("Submittals", "delete") in wanted
    assert ("Projects", "delete") not in wanted  # Procore offers none
    assert len(wanted) == len(set(wanted))


def test_the_debounce_key_names_kind_project_and_item() -> None:
    assert debounce_key("rfi", 2468, 54321) == "eva00:webhook:debounce:rfi:2468:54321"
    assert debounce_key("vendor", None, 9) == "eva00:webhook:debounce:vendor:0:9"
