"""Registration against Procore's documented webhook shapes: the resources list (WebhooksResource:
``tools``, ``except``, ``create``/``update``/``delete``), the v4.0 default for new hooks and the
deliveries cursor (``page_size``, ``page_start``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from eva00.webhooks.register import (
    NEW_HOOK_PAYLOAD_VERSION,
    SEED_TRIGGERS,
    HooksApi,
    parse_resources,
    register,
)
from eva00.webhooks.resources import RESOURCE_KINDS, wanted_triggers

# Items as the published spec declares them (the SDK's example: create/update/delete hold 'nil').
DOCUMENTED = [
    {"api_version": "v2", "product_category": "Project Management", "tools": "RFIs", "except": [],
     "create": "nil", "update": "nil", "delete": "nil"},
    {"api_version": "v2", "product_category": "Portfolio", "tools": "Projects", "except": ["delete"],
     "create": "nil", "update": "nil", "delete": "nil"},
    {"api_version": "v2", "product_category": "Project Management", "tools": "Tasks"},
    {"api_version": "v2", "product_category": "Construction Financials", "tools": "Budget Line Items",
     "except": ["update"]},
    {"api_version": "v2", "product_category": "x", "tools": None},  # no name: skipped
]


def test_the_documented_resources_list_gives_each_resource_its_events() -> None:
    assert parse_resources(DOCUMENTED) == {
        "RFIs": {"create", "update", "delete"}, "Projects": {"create", "update"},
        "Tasks": {"create", "update", "delete"}, "Budget Line Items": {"create", "delete"}}


@pytest.mark.parametrize("answer", [
    pytest.param([{"name": "RFIs", "event_types": ["create"]}], id="our old guess at the shape"),
    pytest.param({"data": "nope"}, id="not a list"),
    pytest.param([], id="empty"),
])
def test_a_resources_list_we_cannot_read_means_every_trigger_is_tried(answer: Any) -> None:
    api = FakeProcore(resources=answer)
    report = register(api.hooks_api(), "https://sync.example.com/webhooks/procore", "secret")
    assert report.refused == [] and set(report.created) == set(wanted_triggers())


class FakeProcore:
    """Records calls; answers hooks, triggers, resources and deliveries like the spec says."""

    def __init__(self, resources: Any = None, hooks: list[dict[str, Any]] | None = None,
                 deliveries: int = 0) -> None:
        self.resources = resources
        self.existing_hooks = hooks or []
        self.deliveries = [{"event_id": 1000 - n, "outcome": "ok", "event": {}} for n in range(deliveries)]
        self.calls: list[tuple[str, str, Any, Any]] = []

    def __call__(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                 json: Any = None) -> Any:
        self.calls.append((method, path, dict(params or {}), json))
        if path.endswith("/resources"):
            return self.resources
        if path.endswith("/deliveries"):
            start = (params or {}).get("page_start")
            found = [d for d in self.deliveries if start is None or d["event_id"] < start]
            return found[:int((params or {})["page_size"])]
        if path.endswith("/triggers"):
            return [] if method == "GET" else {"id": len(self.calls)}
        if method == "GET":
            return self.existing_hooks
        return {"id": 77, **(json or {}).get("hook", {})}

    def hooks_api(self) -> HooksApi:
        return HooksApi(self, 1000, "eva-sync")

    def posted_triggers(self) -> set[tuple[str, str]]:
        return {(c[3]["trigger"]["resource_name"], c[3]["trigger"]["event_type"]) for c in self.calls
                if c[0] == "POST" and c[1].endswith("/triggers")}


def test_register_subscribes_beyond_the_seed_to_what_the_documented_list_offers() -> None:
    offered = [{"tools": name, "except": ["delete"] if name == "Tasks" else []} for name in RESOURCE_KINDS]
    offered.append({"tools": "RFI Replies", "except": []})
    api = FakeProcore(resources=offered)
    report = register(api.hooks_api(), "https://sync.example.com/webhooks/procore", "secret")
    posted = api.posted_triggers()
    assert set(SEED_TRIGGERS) <= posted and len(posted) > len(SEED_TRIGGERS)
    assert ("Tasks", "update") in posted and ("Tasks", "delete") not in posted
    assert ("Tasks", "delete", "not offered by this account") in report.refused


def test_a_new_hook_uses_payload_v4_and_an_existing_hook_keeps_its_own() -> None:
    fresh = FakeProcore(resources=DOCUMENTED)
    register(fresh.hooks_api(), "https://sync.example.com/webhooks/procore", "secret")
    [create] = [c for c in fresh.calls if c[0] == "POST" and c[1].endswith("/hooks")]
    assert create[3]["hook"]["api_version"] == NEW_HOOK_PAYLOAD_VERSION == "v4.0"
    old = FakeProcore(resources=DOCUMENTED, hooks=[{"id": 5, "namespace": "eva-sync", "api_version": "v2.0"}])
    register(old.hooks_api(), "https://sync.example.com/webhooks/procore", "secret")
    [patch] = [c for c in old.calls if c[0] == "PATCH"]
    assert patch[3]["hook"]["api_version"] == "v2.0"


def test_deliveries_are_read_page_by_page_with_the_last_event_id_as_cursor() -> None:
    api = FakeProcore(deliveries=250)
    found = api.hooks_api().deliveries(5, limit=230)
    assert [d["event_id"] for d in found] == list(range(1000, 770, -1))
    pages = [c[2] for c in api.calls if c[1].endswith("/deliveries")]
    assert [p.get("page_start") for p in pages] == [None, 901, 801]
    assert all(p["page_size"] == 100 and "page" not in p and "per_page" not in p for p in pages)
    assert len(FakeProcore(deliveries=3).hooks_api().deliveries(5, limit=10)) == 3
