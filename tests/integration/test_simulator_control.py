"""The simulator as a process and its control API over real HTTP: startup, ready file, SIGTERM,
--help, concurrency, the ledger, mutations reflected in lists and ground truth, and churn."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from eva00.hashing import payload_hash
from eva00.simulator.cli import build_parser
from eva00.simulator.testing import SimHandle, running_simulator


def session(sim: SimHandle) -> requests.Session:
    found = requests.Session()
    found.headers.update(sim.headers())
    return found


def projects(client: requests.Session, sim: SimHandle) -> list[int]:
    return [
        p["id"]
        for p in client.get(
            sim.api_base + "/rest/v1.1/projects", timeout=30, params={"company_id": sim.company_id}
        ).json()
    ]


def test_the_standard_data_set_starts_in_seconds_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    started = time.monotonic()
    with running_simulator(tmp_path, projects=20, items=5000) as handle:
        assert time.monotonic() - started < 5
        health = handle.health()
        assert health["ok"] and 4500 <= health["records"] <= 5500
        assert len(projects(session(handle), handle)) == 20
        assert handle.stop() == 0


def test_a_hundred_thousand_items_also_work(tmp_path: Path) -> None:
    with running_simulator(
        tmp_path, projects=20, items=100_000, rate_limit="off", file_size_bytes=1024
    ) as big:
        client = session(big)
        project = projects(client, big)[0]
        answer = client.get(
            f"{big.api_base}/rest/v1.0/projects/{project}/rfis", params={"per_page": 1000}, timeout=30
        )
        assert int(answer.headers["Total"]) > 400 and len(answer.json()) == int(answer.headers["Total"])
        assert big.health()["records"] >= 95_000


def test_help_documents_every_option() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "eva00.simulator", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in text
    for flag in (
        "--port",
        "--storage-port",
        "--company-id",
        "--client-id",
        "--client-secret",
        "--projects",
        "--items",
        "--seed",
        "--churn",
        "--rate-limit",
        "--spike",
        "--lenient",
        "--ready-file",
    ):
        assert flag in text


def test_the_same_seed_generates_the_same_data(tmp_path: Path) -> None:
    hashes = []
    for run in range(2):
        with running_simulator(tmp_path / str(run), projects=2, items=300, seed=7) as handle:
            records = handle.truth()["records"]
            hashes.append(
                sorted(
                    (r["kind"], r["id"], r["payload_hash"])
                    for r in records
                    if r["kind"]
                    not in (
                        "image",
                        "document",
                        "drawing_revision",
                        "spec_section_revision",
                        "rfi",
                        "submittal",
                    )
                )
            )
    assert hashes[0] == hashes[1] and len(hashes[0]) > 100


def test_several_clients_are_served_at_once(sim: SimHandle) -> None:
    sim.configure(rate_limit="off", spike="off")
    sim.set_faults("slow", delay_s=0.5, paths="/rest/v1.0/me")
    headers = sim.headers()
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda _: (
                    requests.get(sim.api_base + "/rest/v1.0/me", headers=headers, timeout=30).status_code
                ),
                range(8),
            )
        )
    assert statuses == [200] * 8 and time.monotonic() - started < 2.0


def test_the_ledger_records_each_api_request_with_its_details(sim: SimHandle) -> None:
    client = session(sim)
    token_calls = len(sim.ledger())
    projects(client, sim)
    client.get(sim.api_base + "/rest/v1.0/nowhere", timeout=30)
    entries = sim.ledger()[token_calls:]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("GET", "/rest/v1.1/projects", 200),
        ("GET", "/rest/v1.0/nowhere", 404),
    ]
    first = entries[0]
    assert first["query"] == f"company_id={sim.company_id}" and first["company_id"] == str(sim.company_id)
    assert first["token_id"].startswith("tok-") and first["bytes"] > 0 and first["host"] == "api"
    assert first["authorization_present"] and not first["limited"] and isinstance(first["t"], float)
    assert sim.ledger(since_seq=first["seq"])[0]["seq"] == first["seq"] + 1
    stats = sim.stats()
    assert stats["requests_total"] >= 3 and stats["bytes_served"] > 0 and stats["token_leaks"] == 0


@pytest.mark.parametrize(
    ("action", "kind", "visible"),
    [
        ("create", "rfi", "listed"),
        ("update", "submittal", "listed"),
        ("delete", "image", "absent"),
        ("create", "vendor", "listed"),
        ("update", "task", "listed"),
        ("delete", "meeting", "absent"),
    ],
)
def test_mutations_show_in_the_lists_and_the_truth(
    sim: SimHandle, action: str, kind: str, visible: str
) -> None:
    client = session(sim)
    project = projects(client, sim)[0]
    change = sim.mutate(action, kind, project_id=None if kind == "vendor" else project)[0]
    paths = {
        "rfi": f"/rest/v1.0/projects/{project}/rfis",
        "submittal": f"/rest/v1.1/projects/{project}/submittals",
        "image": f"/rest/v1.0/images?project_id={project}",
        "vendor": f"/rest/v1.0/vendors?company_id={sim.company_id}",
        "task": f"/rest/v1.0/tasks?project_id={project}",
        "meeting": f"/rest/v1.1/projects/{project}/meetings",
    }
    body = client.get(sim.api_base + paths[kind], params={"per_page": 1000}, timeout=30).json()
    if kind == "meeting":  # grouped by series, as the spec declares
        body = [m for group in body for m in group["meetings"]]
    listed = {r["id"]: r for r in body}
    truth = next(r for r in sim.truth([kind])["records"] if r["id"] == change["id"])
    if visible == "absent":
        assert change["id"] not in listed and truth["is_deleted"]
        return
    assert listed[change["id"]]["updated_at"] == change["updated_at"] == truth["updated_at"]
    if kind not in ("rfi", "submittal"):
        assert payload_hash(listed[change["id"]]) == truth["payload_hash"]


def test_mutations_in_the_same_second_share_one_updated_at(sim: SimHandle) -> None:
    changes = sim.mutate("update", "rfi", count=5, same_second=True)
    assert len({c["updated_at"] for c in changes}) == 1 and len(changes) == 5


def test_restore_brings_a_deleted_record_back(sim: SimHandle) -> None:
    deleted = sim.mutate("delete", "rfi")[0]
    restored = sim.mutate("restore", "rfi", id=deleted["id"])[0]
    truth = next(r for r in sim.truth(["rfi"])["records"] if r["id"] == deleted["id"])
    assert restored["event_type"] == "create" and not truth["is_deleted"]


def test_revising_a_drawing_adds_a_current_revision_with_a_new_pdf(sim: SimHandle) -> None:
    client = session(sim)
    project = projects(client, sim)[0]
    changes = sim.mutate("revise_drawing", project_id=project)
    revision_id = next(c["id"] for c in changes if c["kind"] == "drawing_revision")
    drawing_id = next(c["id"] for c in changes if c["kind"] == "drawing")
    revisions = client.get(
        f"{sim.api_base}/rest/v1.0/projects/{project}/drawing_revisions",
        timeout=30,
        params={"per_page": 1000},
    ).json()
    mine = [r for r in revisions if r["drawing_id"] == drawing_id]
    assert [r["id"] for r in mine if r["current"]] == [revision_id] and len(mine) >= 2
    since = client.get(
        f"{sim.api_base}/rest/v1.0/projects/{project}/drawing_revisions",
        timeout=30,
        params={"filters[updated_at]": f"{changes[0]['updated_at']}...2100-01-01T00:00:00Z"},
    ).json()
    assert revision_id in [r["id"] for r in since]


def test_churn_keeps_changing_the_data(sim_factory: Any) -> None:
    churning = sim_factory(churn=40)
    first = _wait_for_changes(churning, lambda n: n > 0)
    _wait_for_changes(churning, lambda n: n > first)
    churning.configure(churn_per_s=0)
    # A step already under way may still land: wait until two reads 0.3 s apart agree.
    paused, previous = _changes(churning), -1
    deadline = time.monotonic() + 30
    while paused != previous:
        assert time.monotonic() < deadline, "churn did not stop"
        time.sleep(0.3)
        paused, previous = _changes(churning), paused
    time.sleep(0.5)
    assert _changes(churning) == paused


def _changes(sim: SimHandle) -> int:
    return int(sim.stats()["churn"]["changes"])


def _wait_for_changes(sim: SimHandle, predicate: Any, timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while not predicate(changes := _changes(sim)):
        assert time.monotonic() < deadline, f"churn stuck at {changes} changes"
        time.sleep(0.05)
    return changes
