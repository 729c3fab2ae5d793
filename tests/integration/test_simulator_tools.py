"""Tools switched off per project in the simulator (eva00/simulator/tools.py): by --tools-off at
start and by the control API at run time, answering 403 (or 404) with Procore's error body for
every endpoint of the tool in that project, and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from eva00.simulator.catalogue import COMPANY_LEVEL_KINDS, KINDS
from eva00.simulator.testing import SimHandle, SimulatorFailed, running_simulator
from eva00.simulator.tools import TOOL_KINDS, TOOLS, parse_spec, tool_of


def session(sim: SimHandle) -> requests.Session:
    found = requests.Session()
    found.headers.update(sim.headers())
    return found


def project_ids(client: requests.Session, sim: SimHandle) -> list[int]:
    answer = client.get(sim.api_base + "/rest/v1.1/projects", params={"company_id": sim.company_id},
                        timeout=30)
    return sorted(p["id"] for p in answer.json())


DAILY_LOG_PATHS = ["daily_log_headers/index", "manpower_logs", "notes_logs", "weather_logs", "delivery_logs"]


def test_a_tool_switched_off_refuses_every_endpoint_of_it_in_that_project_only(sim: SimHandle) -> None:
    client = session(sim)
    first, second = project_ids(client, sim)[:2]
    assert sim.switch_tool(first, "daily_logs", on=False) == {"daily_logs": [first]}
    for path in DAILY_LOG_PATHS:
        refused = client.get(f"{sim.api_base}/rest/v1.0/projects/{first}/{path}",
                             params={"log_date": "2024-01-01"}, timeout=30)
        assert refused.status_code == 403, path
        assert refused.json() == {"errors": "The Daily Log tool is not enabled for this project"}
        other = client.get(f"{sim.api_base}/rest/v1.0/projects/{second}/{path}",
                           params={"log_date": "2024-01-01"}, timeout=30)
        assert other.status_code == 200, path
    # The project itself and its other tools answer as before.
    assert client.get(f"{sim.api_base}/rest/v1.0/projects/{first}", params={"company_id": sim.company_id},
                      timeout=30).status_code == 200
    assert client.get(f"{sim.api_base}/rest/v1.0/projects/{first}/rfis", timeout=30).status_code == 200
    assert first in project_ids(client, sim)
    sim.switch_tool(first, "daily_logs", on=True)
    again = client.get(f"{sim.api_base}/rest/v1.0/projects/{first}/notes_logs",
                       params={"log_date": "2024-01-01"}, timeout=30)
    assert again.status_code == 200 and sim.tools_off() == {}


def test_the_refusal_can_be_a_404_as_some_real_projects_answer(sim: SimHandle) -> None:
    client = session(sim)
    project = project_ids(client, sim)[0]
    sim.switch_tool(project, "meetings", on=False)
    sim.configure(tools_off_status=404)
    refused = client.get(f"{sim.api_base}/rest/v1.1/projects/{project}/meetings", timeout=30)
    assert refused.status_code == 404 and "Meetings" in refused.json()["errors"]
    with pytest.raises(SimulatorFailed, match="403 or 404"):
        sim.configure(tools_off_status=500)


def test_an_unknown_tool_or_project_is_refused_with_a_clear_error(sim: SimHandle) -> None:
    project = project_ids(session(sim), sim)[0]
    with pytest.raises(SimulatorFailed, match="unknown tool 'bogus'"):
        sim.switch_tool(project, "bogus", on=False)
    with pytest.raises(SimulatorFailed, match="no such project"):
        sim.switch_tool(999, "rfis", on=False)
    assert sim.tools_off() == {}


def test_tools_off_at_start_pick_the_same_projects_every_run(sim_factory: Callable[..., SimHandle]) -> None:
    spec = "daily_logs@50%,meetings@10%"
    first = sim_factory(projects=6, tools_off=spec).tools_off()
    second = sim_factory(projects=6, tools_off=spec).tools_off()
    assert first == second
    assert len(first["daily_logs"]) == 3 and len(first["meetings"]) == 1


def test_a_bad_tools_off_flag_exits_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SimulatorFailed, match="unknown tool 'nope'"), \
            running_simulator(tmp_path, projects=2, items=20, tools_off="nope"):
        pass


def test_the_tool_of_a_path_groups_procores_resources() -> None:
    assert {tool_of(f"/rest/v1.0/projects/1/{p}") for p in DAILY_LOG_PATHS} == {"daily_logs"}
    assert tool_of("/rest/v1.1/drawing_areas/5/drawings") == "drawings"
    assert tool_of("/rest/v1.0/projects/1") is None
    assert parse_spec("rfis@2+3", [1, 2, 3]) == {"rfis": {2, 3}}
    served = {kind for kinds in TOOL_KINDS.values() for kind in kinds}
    assert set(TOOL_KINDS) == set(TOOLS) and served == set(KINDS) - COMPANY_LEVEL_KINDS
