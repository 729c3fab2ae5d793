"""Faults switched on at run time over real HTTP: error bursts, slow answers, broken bodies, a
wrong Total and connection resets; each limited by count, ratio and path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from eva00.simulator.testing import SimHandle, running_simulator


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_simulator(tmp_path_factory.mktemp("sim"), projects=1, items=200, rate_limit="off") as handle:
        yield handle


@pytest.fixture
def fresh(shared: SimHandle) -> Iterator[SimHandle]:
    shared.clear_faults()
    yield shared
    shared.clear_faults()


def rfis(sim: SimHandle, headers: dict[str, str]) -> requests.Response:
    project = requests.get(
        sim.api_base + "/rest/v1.1/projects",
        params={"company_id": sim.company_id},
        headers=headers,
        timeout=30,
    ).json()[0]["id"]
    return requests.get(f"{sim.api_base}/rest/v1.0/projects/{project}/rfis", headers=headers, timeout=30)


@pytest.mark.parametrize(("mode", "statuses"), [("5xx", {500, 502, 504}), ("503", {503})])
def test_error_bursts_answer_5xx_in_procores_shape(fresh: SimHandle, mode: str, statuses: set[int]) -> None:
    headers = fresh.headers()
    fresh.set_faults(mode, count=2, retry_after_s=7, paths="/rfis")
    answers = [rfis(fresh, headers) for _ in range(3)]
    assert {a.status_code for a in answers[:2]} <= statuses and answers[2].status_code == 200
    assert all("errors" in a.json() for a in answers[:2])
    if mode == "503":
        assert answers[0].headers["Retry-After"] == "7"


def test_slow_answers_take_the_configured_delay(fresh: SimHandle) -> None:
    headers = fresh.headers()
    fresh.set_faults("slow", count=1, delay_s=1.0, paths="/rfis")
    started = time.monotonic()
    assert rfis(fresh, headers).status_code == 200
    assert time.monotonic() - started >= 1.0


def test_truncated_bodies_break_the_read(fresh: SimHandle) -> None:
    headers = fresh.headers()
    fresh.set_faults("truncate", count=1, paths="/rfis")
    with pytest.raises(requests.exceptions.RequestException):
        rfis(fresh, headers)


def test_malformed_json_is_a_200_that_does_not_parse(fresh: SimHandle) -> None:
    headers = fresh.headers()
    fresh.set_faults("malformed_json", count=1, paths="/rfis")
    answer = rfis(fresh, headers)
    assert answer.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer.text)


def test_wrong_total_misstates_the_count(fresh: SimHandle) -> None:
    headers = fresh.headers()
    honest = rfis(fresh, headers)
    fresh.set_faults("wrong_total", count=1, paths="/rfis")
    lying = rfis(fresh, headers)
    assert int(lying.headers["Total"]) > int(honest.headers["Total"]) and lying.json() == honest.json()


def test_resets_drop_the_connection_without_an_answer(fresh: SimHandle) -> None:
    headers = fresh.headers()
    fresh.set_faults("reset", count=1, paths="/rfis")
    with pytest.raises(requests.exceptions.ConnectionError):
        rfis(fresh, headers)
    # The server writes the ledger entry after dropping the connection: the client may be first.
    deadline = time.monotonic() + 5
    while not [e for e in fresh.ledger() if e.get("fault") == "reset"] and time.monotonic() < deadline:
        time.sleep(0.05)
    resets = [e for e in fresh.ledger() if e.get("fault") == "reset"]
    assert [e["status"] for e in resets] == [0]


def test_faults_only_hit_matching_paths_and_their_share(fresh: SimHandle) -> None:
    headers = fresh.headers()
    fresh.set_faults("5xx", ratio=1.0, paths="/images")
    assert rfis(fresh, headers).status_code == 200
    fresh.clear_faults()
    fresh.set_faults("503", ratio=0.0)
    assert all(rfis(fresh, headers).status_code == 200 for _ in range(5))
    faults = requests.get(fresh.api_base + "/_sim/faults", timeout=30).json()["faults"]
    assert faults[0]["mode"] == "503" and faults[0]["hits"] == 0
