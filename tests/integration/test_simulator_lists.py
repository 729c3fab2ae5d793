"""Lists over real HTTP: paging and its headers, filters, deleted views, envelopes, shows, and the
ground truth matching exactly what a client receives."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from eva00.hashing import payload_hash
from eva00.kinds import KIND_TABLE
from eva00.simulator.testing import SimHandle, running_simulator


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_simulator(
        tmp_path_factory.mktemp("sim"), projects=3, items=1500, rate_limit="off", file_size_bytes=2048
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(shared: SimHandle) -> requests.Session:
    session = requests.Session()
    session.headers.update(shared.headers())
    return session


def get(client: requests.Session, sim: SimHandle, path: str, **params: Any) -> requests.Response:
    return client.get(sim.api_base + path, params=params, timeout=30)


def project_ids(client: requests.Session, sim: SimHandle) -> list[int]:
    return [p["id"] for p in get(client, sim, "/rest/v1.1/projects", company_id=sim.company_id).json()]


def every_page(client: requests.Session, sim: SimHandle, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = get(client, sim, path, page=page, **params)
        assert answer.status_code == 200, answer.text
        chunk = records_of(answer.json())
        if not chunk:
            return items
        items += chunk
        page += 1


def records_of(body: Any) -> list[dict[str, Any]]:
    """The records of a list answer: bare, v2 envelope, grouped or wrapped (meetings)."""
    if isinstance(body, dict):
        return list(body.get("data", body.get("meetings", [])))
    return [m for element in body for m in (element["meetings"] if "group_title" in element else [element])]


def test_pages_carry_total_per_page_and_link_headers(shared: SimHandle, client: requests.Session) -> None:
    project = project_ids(client, shared)[0]
    answer = get(client, shared, f"/rest/v1.0/projects/{project}/rfis", per_page=10, page=2)
    total = int(answer.headers["Total"])
    assert answer.headers["Per-Page"] == "10" and len(answer.json()) == 10 and total > 20
    rels = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', answer.headers["Link"]))
    assert set(rels) == {"first", "prev", "next", "last"}
    assert "page=3" in rels["next"] and f"page={-(-total // 10)}" in rels["last"]


def test_the_last_page_has_no_next_link_and_past_it_is_an_empty_list(
    shared: SimHandle, client: requests.Session
) -> None:
    project = project_ids(client, shared)[0]
    first = get(client, shared, f"/rest/v1.0/projects/{project}/rfis", per_page=50)
    last_page = -(-int(first.headers["Total"]) // 50)
    last = get(client, shared, f"/rest/v1.0/projects/{project}/rfis", per_page=50, page=last_page)
    assert 'rel="next"' not in last.headers["Link"] and last.json()
    beyond = get(client, shared, f"/rest/v1.0/projects/{project}/rfis", per_page=50, page=last_page + 1)
    assert beyond.status_code == 200 and beyond.json() == []


def test_link_urls_drop_the_filters_by_default(shared: SimHandle, client: requests.Session) -> None:
    project = project_ids(client, shared)[0]
    answer = get(
        client,
        shared,
        f"/rest/v1.0/projects/{project}/rfis",
        per_page=5,
        **{"filters[updated_at]": "2000-01-01...2100-01-01"},
    )
    assert "filters" not in answer.headers["Link"] and "page=2" in answer.headers["Link"]


@pytest.mark.parametrize(
    ("path", "asked", "served"),
    [
        ("/rest/v1.1/projects?company_id={c}", 1000, 300),
        ("/rest/v1.0/projects/{p}/rfis", 5000, 1000),
        ("/rest/v2.0/companies/{c}/projects/{p}/tasks", 500, 100),
    ],
)
def test_per_page_above_the_maximum_is_clamped_and_reported(
    shared: SimHandle, client: requests.Session, path: str, asked: int, served: int
) -> None:
    project = project_ids(client, shared)[0]
    url = path.format(c=shared.company_id, p=project)
    answer = client.get(shared.api_base + url, params={"per_page": asked}, timeout=30)
    assert answer.status_code == 200 and answer.headers["Per-Page"] == str(served)


@pytest.mark.parametrize(
    ("path", "default"),
    [("/rest/v1.0/projects/{p}/rfis", 100), ("/rest/v2.0/companies/{c}/projects/{p}/tasks", 10)],
)
def test_per_page_defaults_to_procores_default(
    shared: SimHandle, client: requests.Session, path: str, default: int
) -> None:
    project = project_ids(client, shared)[0]
    answer = client.get(shared.api_base + path.format(c=shared.company_id, p=project), timeout=30)
    assert answer.headers["Per-Page"] == str(default)


def test_v2_answers_wrap_data_and_use_string_ids(shared: SimHandle, client: requests.Session) -> None:
    project = project_ids(client, shared)[0]
    body = get(client, shared, f"/rest/v2.0/companies/{shared.company_id}/projects/{project}/tasks").json()
    assert set(body) == {"data"} and all(isinstance(t["id"], str) for t in body["data"])
    truth = {r["id"]: r for r in shared.truth(["task"], project)["records"]}
    for task in body["data"]:
        assert payload_hash(task) == truth[int(task["id"])]["payload_hash_v2"]


def test_updated_at_filter_includes_both_bounds(shared: SimHandle, client: requests.Session) -> None:
    project = project_ids(client, shared)[0]
    records = every_page(client, shared, f"/rest/v1.0/projects/{project}/rfis", per_page=1000)
    stamp = sorted(r["updated_at"] for r in records)[len(records) // 2]
    same = [r for r in records if r["updated_at"] == stamp]
    answer = get(
        client,
        shared,
        f"/rest/v1.0/projects/{project}/rfis",
        per_page=1000,
        **{"filters[updated_at]": f"{stamp}...{stamp}"},
    )
    assert sorted(r["id"] for r in answer.json()) == sorted(r["id"] for r in same)


def test_many_records_share_one_second_across_a_page_boundary(
    shared: SimHandle, client: requests.Session
) -> None:
    project = project_ids(client, shared)[0]
    pages = [
        get(client, shared, "/rest/v1.0/images", project_id=project, per_page=10, page=n).json()
        for n in (1, 2, 3, 4, 5)
    ]
    straddling = [
        i for i in range(1, 5) if pages[i] and pages[i - 1][-1]["updated_at"] == pages[i][0]["updated_at"]
    ]
    assert straddling, "a run of same-second updates crosses a page boundary"
    images = [image for page in pages for image in page]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", i["updated_at"]) for i in images)


def test_ids_view_lists_only_ids(shared: SimHandle, client: requests.Session) -> None:
    answer = get(client, shared, "/rest/v1.1/projects", company_id=shared.company_id, view="ids")
    assert answer.json() == project_ids(client, shared)


@pytest.mark.parametrize(
    "path",
    [
        "/rest/v1.0/projects/{p}/prime_change_orders",
        "/rest/v1.0/specification_sections?project_id={p}",
        "/rest/v1.0/folders?project_id={p}",
    ],
)
def test_unpaged_lists_answer_everything_without_paging_headers(
    shared: SimHandle, client: requests.Session, path: str
) -> None:
    project = project_ids(client, shared)[0]
    answer = client.get(shared.api_base + path.format(p=project), params={"per_page": 1}, timeout=30)
    assert answer.status_code == 200 and "Total" not in answer.headers
    body = answer.json()
    assert (len(body) > 1) if isinstance(body, list) else body["files"] or body["folders"]


def test_daily_logs_without_dates_are_todays_and_windows_are_bounded(
    shared: SimHandle, client: requests.Session
) -> None:
    project = project_ids(client, shared)[0]
    path = f"/rest/v1.0/projects/{project}/daily_log_headers/index"
    today = datetime.now(UTC).date()
    assert {h["log_date"] for h in get(client, shared, path).json()} == {today.isoformat()}
    week = get(
        client, shared, path, start_date=(today - timedelta(days=6)).isoformat(), end_date=today.isoformat()
    ).json()
    assert len({h["log_date"] for h in week}) == 7
    too_wide = get(
        client, shared, path, start_date=(today - timedelta(days=60)).isoformat(), end_date=today.isoformat()
    )
    assert too_wide.status_code == 422 and "errors" in too_wide.json()
    ignored = get(client, shared, path, **{"filters[updated_at]": "2000-01-01...2000-01-02"})
    assert ignored.json(), "daily logs take no updated_at filter: it is ignored"


def test_show_answers_add_content_the_lists_lack(shared: SimHandle, client: requests.Session) -> None:
    project = project_ids(client, shared)[0]
    for kind, path in (
        ("rfi", f"/rest/v1.0/projects/{project}/rfis"),
        ("submittal", f"/rest/v1.1/projects/{project}/submittals"),
    ):
        listed = get(client, shared, path, per_page=1).json()[0]
        shown = get(client, shared, f"{path}/{listed['id']}").json()
        assert set(listed) < set(shown), kind
        assert {k: shown[k] for k in listed} == listed
    rfi = get(client, shared, f"/rest/v1.0/projects/{project}/rfis/{listed['id'] * 0 + 1}")
    assert rfi.status_code == 404


def test_drawings_are_listed_per_area_and_revisions_carry_pdf_urls(
    shared: SimHandle, client: requests.Session
) -> None:
    project = project_ids(client, shared)[0]
    areas = get(client, shared, f"/rest/v1.0/projects/{project}/drawing_areas").json()
    drawings = get(
        client, shared, f"/rest/v1.1/drawing_areas/{areas[0]['id']}/drawings", project_id=project
    ).json()
    assert drawings and all(d["drawing_area_id"] == areas[0]["id"] for d in drawings)
    revisions = get(client, shared, f"/rest/v1.0/projects/{project}/drawing_revisions").json()
    assert all(r["pdf_url"].startswith(shared.file_base) for r in revisions)


def test_every_kind_listed_hashes_exactly_as_the_ground_truth(
    shared: SimHandle, client: requests.Session
) -> None:
    truth = {
        (r["kind"], r["id"], r["project_id"] if r["kind"] == "project_user" else None): r
        for r in shared.truth()["records"]
    }
    seen: dict[str, int] = {}
    for kind, obj, project in _client_view(client, shared):
        key = (kind, obj["id"], project if kind == "project_user" else None)
        assert payload_hash(obj) == truth[key]["payload_hash"], key
        seen[kind] = seen.get(kind, 0) + 1
    assert set(seen) == set(KIND_TABLE)
    assert sum(seen.values()) == sum(1 for r in truth.values() if not r["is_deleted"])


def _client_view(
    client: requests.Session, sim: SimHandle
) -> Iterator[tuple[str, dict[str, Any], int | None]]:
    company = sim.company_id
    for kind, path in (
        ("project", "/rest/v1.1/projects"),
        ("vendor", "/rest/v1.0/vendors"),
        ("company_user", f"/rest/v1.3/companies/{company}/users"),
    ):
        for obj in every_page(client, sim, path, company_id=company, per_page=300):
            yield kind, obj, None
    today = datetime.now(UTC).date()
    window = {"start_date": (today - timedelta(days=30)).isoformat(), "end_date": today.isoformat()}
    for project in project_ids(client, sim):
        lists: list[tuple[str, str, dict[str, Any]]] = [
            ("project_user", f"/rest/v1.0/projects/{project}/users", {}),
            ("submittal", f"/rest/v1.1/projects/{project}/submittals", {}),
            ("rfi", f"/rest/v1.0/projects/{project}/rfis", {}),
            ("drawing_area", f"/rest/v1.0/projects/{project}/drawing_areas", {}),
            ("drawing_set", f"/rest/v1.0/projects/{project}/drawing_sets", {}),
            ("drawing_revision", f"/rest/v1.0/projects/{project}/drawing_revisions", {}),
            ("daily_log_header", f"/rest/v1.0/projects/{project}/daily_log_headers/index", window),
            *[
                (f"{n}_log", f"/rest/v1.0/projects/{project}/{n}_logs", window)
                for n in ("manpower", "notes", "weather", "delivery")
            ],
            ("meeting", f"/rest/v1.1/projects/{project}/meetings", {}),
            ("change_event", "/rest/v1.0/change_events", {"project_id": project}),
            ("change_order_package", "/rest/v1.0/change_order_packages", {"project_id": project}),
            ("potential_change_order", "/rest/v1.0/potential_change_orders", {"project_id": project}),
            ("image", "/rest/v1.0/images", {"project_id": project}),
            ("image_category", "/rest/v1.0/image_categories", {"project_id": project}),
            ("document", f"/rest/v1.0/projects/{project}/documents", {}),
            *[("spec_section_revision", "/rest/v1.0/specification_section_revisions",
               {"project_id": project, "specification_section_division_id": division["id"],
                "all_revisions": "true"})
              for division in every_page(client, sim, "/rest/v1.0/specification_section_divisions",
                                         project_id=project)],
            ("task", "/rest/v1.0/tasks", {"project_id": project}),
        ]
        for kind, path, params in lists:
            for obj in every_page(client, sim, path, per_page=1000, **params):
                if kind in ("rfi", "submittal"):
                    obj = get(client, sim, f"{path}/{obj['id']}").json()
                yield kind, obj, project
        for kind, path in (
            ("prime_change_order", f"/rest/v1.0/projects/{project}/prime_change_orders"),
            ("spec_section", f"/rest/v1.0/specification_sections?project_id={project}"),
        ):
            for obj in client.get(sim.api_base + path, timeout=30).json():
                yield kind, obj, project
        for area in get(client, sim, f"/rest/v1.0/projects/{project}/drawing_areas").json():
            for obj in every_page(
                client, sim, f"/rest/v1.1/drawing_areas/{area['id']}/drawings", project_id=project
            ):
                yield "drawing", obj, project


def test_deleted_records_show_in_their_kinds_documented_delete_signals(sim: SimHandle) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    project = project_ids(client, sim)[0]
    company = sim.company_id
    views = {
        "rfi": (f"/rest/v1.0/projects/{project}/rfis/recycle_bin", {}),
        "submittal": (f"/rest/v1.1/projects/{project}/submittals/recycle_bin", {}),
        "meeting": (f"/rest/v1.1/projects/{project}/meetings", {"deleted_only": "true"}),
        "change_event": (
            "/rest/v1.0/change_events",
            {"project_id": project, "filters[include_deleted]": "only"},
        ),
        "change_order_package": (
            "/rest/v1.0/change_order_packages",
            {"project_id": project, "filters[include_deleted]": "only"},
        ),
        "potential_change_order": (
            "/rest/v1.0/potential_change_orders",
            {"project_id": project, "filters[include_deleted]": "only"},
        ),
        "document": (f"/rest/v1.0/projects/{project}/documents", {"filters[is_in_recycle_bin]": "true"}),
        "vendor": (f"/rest/v1.0/companies/{company}/vendors/inactive", {}),
        "company_user": (f"/rest/v1.0/companies/{company}/users/inactive", {}),
        "project_user": (f"/rest/v1.0/projects/{project}/users/inactive", {}),
    }
    for kind, (path, params) in views.items():
        changed = sim.mutate(
            "delete", kind, project_id=None if kind in ("vendor", "company_user") else project
        )
        deleted_id = changed[0]["id"]
        shown = records_of(get(client, sim, path, **params).json())
        assert [r["id"] for r in shown] == [deleted_id], kind
        truth = next(r for r in sim.truth([kind])["records"] if r["id"] == deleted_id)
        assert truth["is_deleted"] and truth["payload_hash"] == payload_hash(shown[0]), kind
    rfi_gone = get(client, sim, f"/rest/v1.0/projects/{project}/rfis", per_page=1000).json()
    assert views and all(r["deleted_at"] is None for r in rfi_gone)


def test_a_recycle_bin_takes_an_updated_at_window_where_a_deletion_is_an_update(sim: SimHandle) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    project = project_ids(client, sim)[0]
    changed = sim.mutate("delete", "rfi", project_id=project)
    deleted_at = changed[0]["updated_at"]
    path = f"/rest/v1.0/projects/{project}/rfis/recycle_bin"
    inside = get(client, sim, path, **{"filters[updated_at]": f"{deleted_at}...{deleted_at}"}).json()
    before = get(client, sim, path, **{"filters[updated_at]": "2000-01-01T00:00:00Z...2000-01-02T00:00:00Z"})
    assert [r["id"] for r in inside] == [changed[0]["id"]] and before.json() == []


def test_the_undocumented_deleted_views_select_nothing(sim: SimHandle) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    project = project_ids(client, sim)[0]
    revision = sim.mutate("delete", "drawing_revision", project_id=project)[0]["id"]
    listed = get(client, sim, f"/rest/v1.0/projects/{project}/drawing_revisions", per_page=1000,
                 **{"filters[deleted]": "only"}).json()
    assert listed and revision not in [r["id"] for r in listed], "filters[deleted] is ignored"
    for path in ("/rest/v1.0/vendors/inactive", f"/rest/v1.3/companies/{sim.company_id}/users/inactive"):
        answer = client.get(sim.api_base + path, params={"company_id": sim.company_id}, timeout=30)
        assert answer.status_code == 404, path


def test_inactive_projects_are_hidden_unless_all_statuses_are_asked_for(sim: SimHandle) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    before = project_ids(client, sim)
    sim.mutate("delete", "project", id=before[0])
    assert project_ids(client, sim) == before[1:]
    every = get(
        client, sim, "/rest/v1.1/projects", company_id=sim.company_id, **{"filters[by_status]": "All"}
    ).json()
    assert [p["id"] for p in every] == before and every[0]["active"] is False


def test_a_forbidden_project_answers_403_everywhere_and_leaves_the_project_list(sim: SimHandle) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    project = project_ids(client, sim)[0]
    sim.forbid_project(project)
    for path in (
        f"/rest/v1.0/projects/{project}/rfis",
        f"/rest/v1.0/images?project_id={project}",
        f"/rest/v1.0/projects/{project}?company_id={sim.company_id}",
    ):
        answer = client.get(sim.api_base + path, timeout=30)
        assert answer.status_code == 403 and "errors" in answer.json()
    assert project not in project_ids(client, sim)
    sim.allow_project(project)
    assert project in project_ids(client, sim)


def test_records_created_during_pagination_appear_on_later_pages(sim: SimHandle) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    project = project_ids(client, sim)[0]
    path = f"/rest/v1.0/projects/{project}/rfis"
    first = get(client, sim, path, per_page=5).json()
    made = sim.mutate("create", "rfi", project_id=project, count=3)
    rest = every_page(client, sim, path, per_page=5)
    assert {c["id"] for c in made} <= {r["id"] for r in rest}
    assert first == rest[:5]


def test_meetings_are_grouped_and_deleted_ones_come_in_the_ungrouped_wrapper(sim: SimHandle) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    project = project_ids(client, sim)[0]
    path = f"/rest/v1.1/projects/{project}/meetings"
    grouped = get(client, sim, path, per_page=1000).json()
    assert grouped and all(set(g) == {"group_title", "meetings"} for g in grouped)
    meetings = [m for g in grouped for m in g["meetings"]]
    assert len(grouped) > 1 and len(meetings) == int(get(client, sim, path).headers["Total"])
    gone = sim.mutate("delete", "meeting", project_id=project)[0]["id"]
    wrapped = get(client, sim, path, deleted_only="true").json()
    assert set(wrapped) == {"meetings"} and [m["id"] for m in wrapped["meetings"]] == [gone]


def test_spec_section_revisions_need_a_division_and_list_current_ones_unless_all_revisions(
        sim: SimHandle) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    project = project_ids(client, sim)[0]
    path = "/rest/v1.0/specification_section_revisions"
    sim.mutate("create", "spec_section_revision", project_id=project)  # the section's old one is not current
    missing = get(client, sim, path, project_id=project)
    assert missing.status_code == 400 and "specification_section_division_id" in missing.json()["errors"]
    divisions = every_page(client, sim, "/rest/v1.0/specification_section_divisions", project_id=project)
    assert divisions and all(isinstance(d["id"], int) for d in divisions)
    current: list[dict[str, Any]] = []
    every: list[dict[str, Any]] = []
    for division in divisions:
        query = {"project_id": project, "specification_section_division_id": division["id"]}
        current += every_page(client, sim, path, **query)
        every += every_page(client, sim, path, all_revisions="true", **query)
        assert {r["specification_section_division_id"] for r in current + every} <= {
            d["id"] for d in divisions}
    truth = [r for r in sim.truth(["spec_section_revision"], project_id=project)["records"]
             if not r["is_deleted"]]
    assert sorted(r["id"] for r in every) == sorted(r["id"] for r in truth)
    sections = sim.truth(["spec_section"], project_id=project)["records"]
    assert 0 < len(current) < len(every) and len(current) <= len(sections)


def test_revisions_of_an_obsolete_drawing_are_listed_only_with_with_obsolete(sim: SimHandle) -> None:
    client = requests.Session()
    client.headers.update(sim.headers())
    project = project_ids(client, sim)[0]
    path = f"/rest/v1.0/projects/{project}/drawing_revisions"
    before = every_page(client, sim, path, per_page=1000)
    drawing = sim.mutate("obsolete_drawing", "drawing", project_id=project)[0]["id"]
    hidden = {r["id"] for r in before if r["drawing_id"] == drawing}
    assert hidden
    shown = every_page(client, sim, path, per_page=1000)
    assert {r["id"] for r in shown} == {r["id"] for r in before} - hidden
    assert {r["id"] for r in every_page(client, sim, path, per_page=1000, with_obsolete="true")} == {
        r["id"] for r in before}
