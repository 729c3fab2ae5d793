"""The simulator answers every request the client makes in the shape the published spec declares,
over real HTTP: top-level form, field types, paging headers, 400 for a missing required parameter,
and each alternative of a oneOf the client may meet (which the client reads too)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from eva00.procore.endpoints import ENDPOINTS, EndpointSpec, Scope
from eva00.procore.paging import page_params
from eva00.procore.shapes import list_records
from eva00.simulator.testing import SimHandle, running_simulator
from tests.contract.digest import normalise, parse
from tests.contract.schemas import GAPS, SCHEMAS, Schema, check_answer

DOCUMENTED = parse()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_simulator(tmp_path_factory.mktemp("sim"), projects=2, items=400, rate_limit="off",
                           file_size_bytes=2048) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(shared: SimHandle) -> requests.Session:
    session = requests.Session()
    session.headers.update(shared.headers())
    return session


def _get(client: requests.Session, sim: SimHandle, path: str, params: dict[str, str]) -> requests.Response:
    return client.get(sim.api_base + path, params=params, timeout=30)


def _project(client: requests.Session, sim: SimHandle) -> int:
    return int(_get(client, sim, "/rest/v1.1/projects", {"company_id": str(sim.company_id)}).json()[0]["id"])


def _request(client: requests.Session, sim: SimHandle, kind: str, what: str) -> tuple[str, dict[str, str]]:
    """The (path, query) the client sends for this endpoint of the kind."""
    spec = ENDPOINTS[kind]
    project = None if spec.scope is Scope.COMPANY else _project(client, sim)
    if what == "parents":
        path, fixed = spec.parent_listing_request(company_id=sim.company_id, project_id=project)
        return path, {**fixed, "page": "1", "per_page": "1000"}
    parent = _first_parent(client, sim, spec, project) if spec.scope is Scope.PARENT else None
    path, fixed = spec.list_request(company_id=sim.company_id, project_id=project, parent_id=parent)
    if what == "deleted":
        if spec.deleted.listing_path:
            return spec.deleted.listing_path.format(company_id=sim.company_id, project_id=project), {
                **{k: v for k, v in fixed.items() if k == "project_id"}, **spec.deleted.listing_query}
        return path, {**fixed, **spec.deleted.listing_query}
    params = page_params(spec, fixed, page=1)
    if spec.date_window:
        today = datetime.now(UTC).date()
        params |= {"start_date": (today - timedelta(days=30)).isoformat(), "end_date": today.isoformat()}
    if what == "show":
        first = list_records(_get(client, sim, path, params).json(), endpoint=path)[0]
        return spec.show_request(int(first["id"]), company_id=sim.company_id, project_id=project)
    return path, params


def _first_parent(client: requests.Session, sim: SimHandle, spec: EndpointSpec, project: int | None) -> int:
    if spec.parent_listing is not None:
        path, fixed = spec.parent_listing_request(company_id=sim.company_id, project_id=project)
    else:
        parent = ENDPOINTS[spec.parent_kind or ""]
        path, fixed = parent.list_request(company_id=sim.company_id, project_id=project)
    return int(_get(client, sim, path, fixed).json()[0]["id"])


def _check(schema: Schema, answer: requests.Response, spec: EndpointSpec, what: str) -> None:
    assert answer.status_code == 200, answer.text[:300]
    body = answer.json()
    assert check_answer(schema, body) == []
    assert list_records(body, endpoint=answer.url), "the client reads records from it"
    if what != "show" and schema.paged and (what == "parents" or spec.paged):
        assert {"Total", "Per-Page", "Link"} <= set(answer.headers), "paging headers declared by the spec"


LIVE = sorted(key for key in SCHEMAS if key[1] != "deleted")
DELETED = sorted(key for key in SCHEMAS if key[1] == "deleted")


@pytest.mark.parametrize(("kind", "what"), LIVE, ids=[f"{k}:{w}" for k, w in LIVE])
def test_the_simulator_answers_each_request_of_the_client_in_the_declared_shape(
        shared: SimHandle, client: requests.Session, kind: str, what: str) -> None:
    path, params = _request(client, shared, kind, what)
    _check(SCHEMAS[(kind, what)], _get(client, shared, path, params), ENDPOINTS[kind], what)


@pytest.mark.parametrize(("kind", "what"), DELETED, ids=[f"{k}:{w}" for k, w in DELETED])
def test_deleted_listings_answer_in_the_declared_shape(sim: SimHandle, kind: str, what: str) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    spec = ENDPOINTS[kind]
    sim.mutate("delete", kind, project_id=None if spec.scope is Scope.COMPANY else _project(client, sim))
    path, params = _request(client, sim, kind, what)
    _check(SCHEMAS[(kind, what)], _get(client, sim, path, params), spec, what)


def test_every_endpoint_the_client_calls_has_a_schema() -> None:
    wanted = {(kind, "list") for kind in ENDPOINTS}
    wanted |= {(kind, "show") for kind, spec in ENDPOINTS.items() if spec.show_path}
    wanted |= {(kind, "deleted") for kind, spec in ENDPOINTS.items()
               if spec.deleted.listing_path or spec.deleted.listing_query}
    wanted |= {(kind, "parents") for kind, spec in ENDPOINTS.items() if spec.parent_listing}
    assert wanted - set(SCHEMAS) == set()


@pytest.mark.parametrize("kind", sorted(ENDPOINTS))
def test_every_field_the_client_reads_is_declared_or_listed_as_a_gap(kind: str) -> None:
    spec = ENDPOINTS[kind]
    read = {"id", *spec.file_fields}
    if spec.supports_updated_at:
        read.add("updated_at")
    if spec.deleted.record_field:
        read.add(spec.deleted.record_field)
    if spec.date_window:
        read.add("date")
    declared = set(SCHEMAS[(kind, "list")].record) | set(GAPS.get(kind, {}))
    assert read - declared == set()


@pytest.mark.parametrize(("kind", "what"), [k for k in LIVE if k[1] != "show"],
                         ids=[f"{k}:{w}" for k, w in LIVE if w != "show"])
def test_a_missing_required_parameter_answers_400_with_procores_error_body(
        shared: SimHandle, client: requests.Session, kind: str, what: str) -> None:
    path, params = _request(client, shared, kind, what)
    spec = ENDPOINTS[kind]
    template = spec.parent_listing.path if what == "parents" and spec.parent_listing else spec.path
    required = DOCUMENTED[normalise(template)].required
    for name in sorted(required & set(params)):
        answer = _get(client, shared, path, {k: v for k, v in params.items() if k != name})
        assert answer.status_code == 400, f"without {name}: {answer.status_code}"
        assert isinstance(answer.json().get("errors"), str)


def test_the_project_show_requires_company_id(shared: SimHandle, client: requests.Session) -> None:
    project = _project(client, shared)
    assert _get(client, shared, f"/rest/v1.0/projects/{project}", {}).status_code == 400
    path, query = ENDPOINTS["project"].show_request(project, company_id=shared.company_id)
    assert _get(client, shared, path, query).status_code == 200


@pytest.mark.parametrize("view", ["compact", "normal", "extended"])
def test_each_project_list_alternative_is_served_and_read_by_the_client(
        shared: SimHandle, client: requests.Session, view: str) -> None:
    answer = _get(client, shared, "/rest/v1.1/projects", {"company_id": str(shared.company_id), "view": view})
    assert check_answer(SCHEMAS[("project", "list")], answer.json()) == []
    records = list_records(answer.json(), endpoint="GET /rest/v1.1/projects")
    assert records and all(isinstance(r["id"], int) and r.get("name") for r in records)
    if view == "compact":
        assert all(set(r) == {"id", "name"} for r in records)


def test_both_meeting_list_alternatives_are_served_and_read_by_the_client(sim: SimHandle) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    project = _project(client, sim)
    gone = sim.mutate("delete", "meeting", project_id=project)[0]["id"]
    path = f"/rest/v1.1/projects/{project}/meetings"
    grouped = _get(client, sim, path, {"per_page": "1000"}).json()
    wrapped = _get(client, sim, path, {"deleted_only": "true"}).json()
    assert check_answer(SCHEMAS[("meeting", "list")], grouped) == []
    assert check_answer(SCHEMAS[("meeting", "deleted")], wrapped) == []
    live = {r["id"] for r in list_records(grouped, endpoint=path)}
    assert live and gone not in live
    assert [r["id"] for r in list_records(wrapped, endpoint=path)] == [gone]


def test_the_checker_catches_a_wrong_form_a_wrong_type_and_a_missing_id() -> None:
    schema = SCHEMAS[("meeting", "list")]
    assert check_answer(schema, [{"id": 1}]) == ["top level is array, the spec declares grouped"]
    bad: Any = [{"group_title": "OAC", "meetings": [{"id": "1", "updated_at": "yesterday"}]}]
    assert check_answer(schema, bad) == ["[0] has no integer id", "[0].id = '1' is not an integer",
                                         "[0].updated_at = 'yesterday' is not a date-time"]
    assert check_answer(SCHEMAS[("drawing", "list")], [{"id": 1, "current_revision": {"pdf_url": 5}}]) == [
        "[0].current_revision.pdf_url = 5 is not a string"]
