"""Webhooks over real HTTP: the hooks/triggers/deliveries API and deliveries to a real listener,
with the configured Authorization header, optional HMAC, duplicates, drops and retries."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
import requests

from eva00.simulator.testing import SimHandle

HOOKS = "/rest/v1.0/webhooks/hooks"
# WebhooksResource and WebhooksDelivery as the published spec declares them (procore-oas.md).
RESOURCE_FIELDS = ("api_version", "product_category", "tools", "except", "create", "update", "delete")
DELIVERY_FIELDS = ("event", "event_id", "outcome", "response_body", "response_error", "started_at",
                   "completed_at", "response_status", "response_headers")


class Listener:
    """A webhook destination that records every POST and answers the statuses it is told to."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                listener.received.append((dict(self.headers), body))
                status = listener.statuses.pop(0) if listener.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/procore"

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(body) for _, body in self.received]


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.server.shutdown()


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def register(
    sim: SimHandle,
    headers: dict[str, str],
    url: str,
    version: str = "v2.0",
    triggers: tuple[tuple[str, str], ...] = (("RFIs", "create"), ("RFIs", "update")),
) -> int:
    hook = requests.post(
        sim.api_base + HOOKS,
        headers=headers,
        timeout=30,
        json={
            "company_id": sim.company_id,
            "hook": {
                "api_version": version,
                "namespace": "eva-sync",
                "destination_url": url,
                "destination_headers": {"Authorization": "Secret s3cr3t"},
            },
        },
    )
    assert hook.status_code == 201
    for resource, event in triggers:
        made = requests.post(
            f"{sim.api_base}{HOOKS}/{hook.json()['id']}/triggers",
            headers=headers,
            timeout=30,
            json={"company_id": sim.company_id, "trigger": {"resource_name": resource, "event_type": event}},
        )
        assert made.status_code == 201
    return int(hook.json()["id"])


def test_hooks_and_triggers_can_be_listed_changed_and_deleted(sim: SimHandle) -> None:
    headers = sim.headers()
    params = {"company_id": sim.company_id}
    hook_id = register(sim, headers, "http://127.0.0.1:9/x")
    listed = requests.get(
        sim.api_base + HOOKS, params={**params, "namespace": "eva-sync"}, headers=headers, timeout=30
    ).json()
    assert [h["id"] for h in listed] == [hook_id] and listed[0]["api_version"] == "v2.0"
    for query, found in (({"namespace": "*"}, [hook_id]), ({"namespace": "other"}, []),
                         ({"api_version": "v4.0"}, []), ({"api_version": "v2.0"}, [hook_id])):
        answer = requests.get(sim.api_base + HOOKS, params={**params, **query}, headers=headers, timeout=30)
        assert [h["id"] for h in answer.json()] == found, query
    patched = requests.patch(
        f"{sim.api_base}{HOOKS}/{hook_id}",
        headers=headers,
        timeout=30,
        json={"company_id": sim.company_id, "hook": {"api_version": "v4.0"}},
    )
    assert patched.json()["api_version"] == "v4.0"
    one = requests.get(f"{sim.api_base}{HOOKS}/{hook_id}", params=params, headers=headers, timeout=30)
    assert one.status_code in (404, 405)  # the published spec has no GET of one hook
    triggers = requests.get(
        f"{sim.api_base}{HOOKS}/{hook_id}/triggers", params=params, headers=headers, timeout=30
    ).json()
    assert {(t["resource_name"], t["event_type"]) for t in triggers} == {
        ("RFIs", "CREATE"),  # WebhooksTrigger's enum is uppercase
        ("RFIs", "UPDATE"),
    }
    assert all(t["webhook_hook_id"] == hook_id and t["company_id"] == sim.company_id for t in triggers)
    gone = requests.delete(
        f"{sim.api_base}{HOOKS}/{hook_id}/triggers/{triggers[0]['id']}",
        params=params,
        headers=headers,
        timeout=30,
    )
    assert gone.status_code == 204
    assert (
        requests.delete(
            f"{sim.api_base}{HOOKS}/{hook_id}", params=params, headers=headers, timeout=30
        ).status_code
        == 204
    )
    assert requests.get(sim.api_base + HOOKS, params=params, headers=headers, timeout=30).json() == []


def test_triggers_a_resource_does_not_offer_are_refused(sim: SimHandle) -> None:
    headers = sim.headers()
    hook_id = register(sim, headers, "http://127.0.0.1:9/x", triggers=())
    offered = requests.get(
        sim.api_base + "/rest/v1.0/webhooks/resources",
        params={"company_id": sim.company_id},
        headers=headers,
        timeout=30,
    ).json()
    projects = next(item for item in offered if item["tools"] == "Projects")
    assert projects["except"] == ["delete"] and set(projects) == set(RESOURCE_FIELDS)
    refused = requests.post(
        f"{sim.api_base}{HOOKS}/{hook_id}/triggers",
        headers=headers,
        timeout=30,
        json={"company_id": sim.company_id, "trigger": {"resource_name": "Projects", "event_type": "delete"}},
    )
    assert refused.status_code == 422 and "errors" in refused.json()


def test_each_change_is_delivered_once_with_the_configured_authorization(
    sim: SimHandle, listener: Listener
) -> None:
    headers = sim.headers()
    register(sim, headers, listener.url)
    made = sim.mutate("create", "rfi", count=2)
    sim.mutate("update", "rfi", id=made[0]["id"])
    sim.mutate("create", "image")
    wait_for(lambda: len(listener.received) == 3)
    time.sleep(0.3)
    assert len(listener.received) == 3
    assert all(
        h["Authorization"] == "Secret s3cr3t" and "X-Procore-Signature" not in h for h, _ in listener.received
    )
    events = listener.events()
    assert sorted((e["event_type"], e["resource_id"]) for e in events) == sorted(
        [("create", made[0]["id"]), ("create", made[1]["id"]), ("update", made[0]["id"])]
    )
    first = events[0]
    assert first["resource_name"] == "RFIs" and first["company_id"] == sim.company_id
    assert first["project_id"] == made[0]["project_id"] and len(first["ulid"]) == 26
    assert isinstance(first["id"], int) and first["api_version"] == "v2.0"


@pytest.mark.parametrize("version", ["v4.0", "v4"])
def test_v4_hooks_get_string_ids_reason_and_resource_type(
        sim: SimHandle, listener: Listener, version: str) -> None:
    register(sim, sim.headers(), listener.url, version=version)
    made = sim.mutate("update", "rfi")[0]
    wait_for(lambda: len(listener.received) == 1)
    event = listener.events()[0]
    assert event["reason"] == "update" and event["resource_type"] == "RFIs" and "ulid" not in event
    assert event["resource_id"] == str(made["id"]) and event["company_id"] == str(sim.company_id)


def test_an_hmac_signature_is_added_when_configured(sim: SimHandle, listener: Listener) -> None:
    sim.configure(webhooks={"hmac_secret": "k3y"})
    register(sim, sim.headers(), listener.url)
    sim.mutate("create", "rfi")
    wait_for(lambda: len(listener.received) == 1)
    headers, body = listener.received[0]
    expected = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert headers["X-Procore-Signature"] == f"sha256={expected}"


def test_failed_deliveries_are_retried_with_backoff_and_recorded(sim: SimHandle, listener: Listener) -> None:
    sim.configure(webhooks={"retry_base_s": 0.2, "retry_cap_s": 1})
    listener.statuses = [500, 503]
    headers = sim.headers()
    hook_id = register(sim, headers, listener.url)
    sim.mutate("create", "rfi")
    wait_for(lambda: len(listener.received) == 3)
    assert len({body for _, body in listener.received}) == 1

    def listed() -> list[dict[str, Any]]:
        answer = requests.get(f"{sim.api_base}{HOOKS}/{hook_id}/deliveries", headers=headers,
                              timeout=30, params={"company_id": sim.company_id, "filters[status]": "any"})
        assert answer.status_code == 200
        return list(answer.json())

    wait_for(lambda: listed()[0]["outcome"] == "ok")
    [delivery] = listed()
    assert set(delivery) == set(DELIVERY_FIELDS) and delivery["response_status"] == 200
    assert delivery["event"] == listener.events()[0]


def test_a_refused_destination_is_retried_until_it_listens(sim: SimHandle) -> None:
    sim.configure(webhooks={"retry_base_s": 0.2, "retry_cap_s": 0.4})
    headers = sim.headers()
    hook_id = register(sim, headers, "http://127.0.0.1:9/closed")
    sim.mutate("create", "rfi")

    def retrying() -> bool:
        found = requests.get(
            f"{sim.api_base}{HOOKS}/{hook_id}/deliveries",
            headers=headers,
            timeout=30,
            params={"company_id": sim.company_id},
        ).json()
        return bool(found) and found[0]["outcome"] == "retried" and found[0]["response_error"] is not None

    wait_for(retrying)


def test_duplicates_and_drops_follow_their_ratios(sim: SimHandle, listener: Listener) -> None:
    register(sim, sim.headers(), listener.url)
    sim.configure(webhooks={"duplicate_ratio": 1.0})
    sim.mutate("create", "rfi")
    wait_for(lambda: len(listener.received) == 2)
    assert listener.received[0][1] == listener.received[1][1]
    sim.configure(webhooks={"duplicate_ratio": 0.0, "drop_ratio": 1.0})
    sim.mutate("create", "rfi", count=3)
    time.sleep(0.5)
    assert len(listener.received) == 2 and sim.stats()["webhooks"]["dropped"] == 3


def test_delays_and_reordering_hold_events_back(sim: SimHandle, listener: Listener) -> None:
    register(sim, sim.headers(), listener.url)
    sim.configure(webhooks={"delay_s": 0.8, "reorder_window_s": 0.5})
    started = time.monotonic()
    sim.mutate("create", "rfi", count=6)
    wait_for(lambda: len(listener.received) == 6)
    assert time.monotonic() - started >= 0.8


def test_project_hooks_only_hear_their_project(sim: SimHandle, listener: Listener) -> None:
    headers = sim.headers()
    projects = [
        p["id"]
        for p in requests.get(
            sim.api_base + "/rest/v1.1/projects",
            headers=headers,
            timeout=30,
            params={"company_id": sim.company_id},
        ).json()
    ]
    hook = requests.post(
        sim.api_base + HOOKS,
        headers=headers,
        timeout=30,
        json={"project_id": projects[0], "hook": {"api_version": "v2.0", "destination_url": listener.url}},
    ).json()
    requests.post(
        f"{sim.api_base}{HOOKS}/{hook['id']}/triggers",
        headers=headers,
        timeout=30,
        json={"project_id": projects[0], "trigger": {"resource_name": "RFIs", "event_type": "create"}},
    )
    sim.mutate("create", "rfi", project_id=projects[1])
    sim.mutate("create", "rfi", project_id=projects[0])
    wait_for(lambda: len(listener.received) == 1)
    time.sleep(0.3)
    assert [e["project_id"] for e in listener.events()] == [projects[0]]


def test_deliveries_page_by_page_size_and_the_last_event_id_of_the_previous_page(
        sim: SimHandle, listener: Listener) -> None:
    headers = sim.headers()
    hook_id = register(sim, headers, listener.url)
    sim.mutate("create", "rfi", count=5)
    wait_for(lambda: len(listener.received) == 5)

    def page(**params: Any) -> list[dict[str, Any]]:
        answer = requests.get(f"{sim.api_base}{HOOKS}/{hook_id}/deliveries", headers=headers, timeout=30,
                              params={"company_id": sim.company_id, **params})
        assert answer.status_code == 200 and "Total" not in answer.headers
        return list(answer.json())

    wait_for(lambda: len(page(**{"filters[status]": "successful"})) == 5)
    first = page(page_size=2)
    second = page(page_size=2, page_start=first[-1]["event_id"])
    third = page(page_size=2, page_start=second[-1]["event_id"])
    ids = [d["event_id"] for d in first + second + third]
    assert [len(first), len(second), len(third)] == [2, 2, 1]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5  # newest first, none twice
    assert page(**{"filters[status]": "discarded"}) == []
    refused = requests.get(f"{sim.api_base}{HOOKS}/{hook_id}/deliveries", headers=headers, timeout=30,
                           params={"company_id": sim.company_id, "filters[status]": "successfull"})
    assert refused.status_code == 400
