"""Procore's paths on the API host: which list or show answers each, with which rules.

Per-endpoint rules (version, paging, maxima, updated_at filtering, deleted views) are data in
LISTS; handlers only resolve the scope (company, project, drawing area) and check permissions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from eva00.simulator import deleted, hooks_api
from eva00.simulator.generator import root_folder_id
from eva00.simulator.listing import ListSpec, links, list_response, positive_int
from eva00.simulator.scopes import company_scope, project_scope
from eva00.simulator.store import Record
from eva00.simulator.web import HttpError, Request, Response, json_response

if TYPE_CHECKING:
    from eva00.simulator.state import SimState

P = r"(?P<project>\d+)"
C = r"(?P<company>\d+)"
DELETED_AT_ONLY = ("filters[include_deleted]", {"only": "deleted", "with": "all"})


@dataclass(frozen=True)
class ListRoute:
    pattern: str
    spec: ListSpec
    scope: str  # company | project | project_query | area
    view: str = "live"


LISTS = [
    ListRoute(r"/rest/v1\.[01]/projects", ListSpec("project", max_per_page=300, deleted_param=(
        "filters[by_status]", {"all": "all", "inactive": "deleted", "active": "live"})), "company"),
    ListRoute(r"/rest/v1\.0/vendors", ListSpec("vendor"), "company"),
    ListRoute(rf"/rest/v1\.0/companies/{C}/vendors", ListSpec("vendor"), "company"),
    ListRoute(rf"/rest/v1\.3/companies/{C}/users", ListSpec("company_user"), "company"),
    ListRoute(rf"/rest/v1\.0/projects/{P}/users", ListSpec("project_user", updated_filter=False), "project"),
    ListRoute(rf"/rest/v1\.1/projects/{P}/submittals", ListSpec("submittal"), "project"),
    ListRoute(rf"/rest/v1\.0/projects/{P}/rfis", ListSpec("rfi"), "project"),
    ListRoute(rf"/rest/v1\.0/projects/{P}/drawing_areas", ListSpec("drawing_area", updated_filter=False),
              "project"),
    ListRoute(r"/rest/v1\.1/drawing_areas/(?P<area>\d+)/drawings", ListSpec("drawing", updated_filter=False),
              "area"),
    ListRoute(rf"/rest/v1\.0/projects/{P}/drawing_revisions", ListSpec(
        "drawing_revision", updated_filter=False, hides_obsolete=True), "project"),
    ListRoute(rf"/rest/v1\.0/projects/{P}/drawing_sets", ListSpec("drawing_set", updated_filter=False),
              "project"),
    ListRoute(rf"/rest/v1\.0/projects/{P}/daily_log_headers/index",
              ListSpec("daily_log_header", updated_filter=False, dated=True), "project"),
    *[ListRoute(rf"/rest/v1\.0/projects/{P}/{name}_logs",
                ListSpec(f"{name}_log", updated_filter=False, dated=True), "project")
      for name in ("manpower", "notes", "weather", "delivery")],
    ListRoute(rf"/rest/v1\.1/projects/{P}/meetings", ListSpec(
        "meeting", updated_filter=False, grouped=True),
        "project"),
    ListRoute(r"/rest/v1\.0/change_events", ListSpec("change_event", deleted_param=DELETED_AT_ONLY),
              "project_query"),
    ListRoute(r"/rest/v1\.0/change_order_packages",
              ListSpec("change_order_package", deleted_param=DELETED_AT_ONLY), "project_query"),
    ListRoute(r"/rest/v1\.0/potential_change_orders",
              ListSpec("potential_change_order", deleted_param=DELETED_AT_ONLY), "project_query"),
    ListRoute(rf"/rest/v1\.0/projects/{P}/prime_change_orders",
              ListSpec("prime_change_order", paged=False, updated_filter=False), "project"),
    ListRoute(r"/rest/v1\.0/images", ListSpec("image"), "project_query"),
    ListRoute(r"/rest/v1\.0/image_categories", ListSpec("image_category", updated_filter=False),
              "project_query"),
    ListRoute(rf"/rest/v1\.0/projects/{P}/documents", ListSpec(
        "document", deleted_param=("filters[is_in_recycle_bin]", {"true": "deleted"})), "project"),
    ListRoute(r"/rest/v1\.0/specification_sections",
              ListSpec("spec_section", paged=False, updated_filter=False), "project_query"),
    ListRoute(r"/rest/v1\.0/tasks", ListSpec("task"), "project_query"),
    ListRoute(rf"/rest/v2\.0/companies/{C}/projects/{P}/tasks",
              ListSpec("task", max_per_page=100, default_per_page=10, v2=True), "project"),
]

Route = tuple[str, "re.Pattern[str]", Callable[["SimState", Request, dict[str, str]], Response]]


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern + r"/?\Z")


def _lister(route: ListRoute) -> Callable[[SimState, Request, dict[str, str]], Response]:
    def handle(sim: SimState, req: Request, params: dict[str, str]) -> Response:
        where: Callable[[Record], bool] | None = None
        if route.scope == "company":
            company_scope(sim, req, params)
            scope = None
        elif route.scope == "area":
            # project_id is optional here in the spec: the area names its project.
            area = sim.store.get("drawing_area", int(params["area"]))
            if area is None or area.is_deleted:
                raise HttpError(404, "Drawing area not found")
            scope = project_scope(sim, req, None if req.q("project_id") else str(area.project_id))
            if area.project_id != scope:
                raise HttpError(404, "Drawing area not found")
            where = lambda r: r.parent_id == area.id  # noqa: E731
        else:
            scope = project_scope(sim, req, params.get("project"))
        if "company" in params and route.scope != "company":
            company_scope(sim, req, params)
        if route.spec.kind == "project":
            where = lambda r: r.id not in sim.store.forbidden  # noqa: E731
        return list_response(sim.store, sim.options, sim.api_base, req, route.spec, scope, route.view,
                             where, datetime.fromtimestamp(sim.now(), UTC).date())
    return handle


def show(kind: str) -> Callable[[SimState, Request, dict[str, str]], Response]:
    def handle(sim: SimState, req: Request, params: dict[str, str]) -> Response:
        scope = project_scope(sim, req, params.get("project"))
        record = sim.store.get(kind, int(params["id"]))
        if record is None or record.is_deleted or record.project_id != scope:
            raise HttpError(404, f"{kind.replace('_', ' ').capitalize()} not found")
        return Response(200, orjson.dumps(record.show_object()))
    return handle


def record_show(kind: str, scope: str) -> Callable[[SimState, Request, dict[str, str]], Response]:
    """Show of a kind whose show answers exactly its list object (company kinds show inactive
    records with their inactive signal; a deleted project-level record is 404)."""
    def handle(sim: SimState, req: Request, params: dict[str, str]) -> Response:
        if scope == "company":
            company_scope(sim, req, params)
            record = sim.store.get(kind, int(params["id"]))
        else:
            project_id = project_scope(sim, req, None)
            record = sim.store.get(kind, int(params["id"]))
            if record is not None and (record.project_id != project_id or record.is_deleted):
                record = None
        if record is None:
            raise HttpError(404, f"{kind.replace('_', ' ').capitalize()} not found")
        return Response(200, record.list_bytes())
    return handle


def project_show(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    company_scope(sim, req, {})  # the spec requires company_id here
    project_id = project_scope(sim, req, params["project"])
    record = sim.store.project(project_id)
    assert record is not None
    return Response(200, record.list_bytes())


def folder(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    project_id = project_scope(sim, req, None)
    root = root_folder_id(project_id)
    folder_id = int(params.get("folder") or root)
    if folder_id == root:
        head: dict[str, Any] = {"id": root, "name": "Documents", "parent_id": None, "is_root": True,
                                "name_with_path": "", "is_deleted": False}
    else:
        found = sim.store.get("document", folder_id)
        if found is None or found.is_deleted or found.project_id != project_id \
                or found.payload["document_type"] != "folder":
            raise HttpError(404, "Folder not found")
        head = {**found.payload, "is_root": False}
    children = [r for r in sim.store.live("document", project_id) if r.parent_id == folder_id]
    head["folders"] = [{**r.payload, "has_children": any(c.parent_id == r.id for c in children) or None}
                       for r in children if r.payload["document_type"] == "folder"]
    head["files"] = [{k: v for k, v in {**r.payload, **(r.show_extra or {})}.items() if k != "file"}
                     for r in children if r.payload["document_type"] == "file"]
    return json_response(200, head)


REVISIONS = ListSpec("spec_section_revision", updated_filter=False)
DIVISION_NAME = "specification_section_division_id"


def spec_section_revisions(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    """Revisions of one division (required, as the spec declares): current ones only unless
    ``all_revisions=true``."""
    project_id = project_scope(sim, req, None)
    division = req.q(DIVISION_NAME)
    if not division:
        raise HttpError(400, f"{DIVISION_NAME} is required")
    if not division.isdigit():
        raise HttpError(400, f"{DIVISION_NAME} must be an integer")
    every = (req.q("all_revisions") or "").lower() == "true"
    current = {s.payload.get("current_revision_id") for s in sim.store.live("spec_section", project_id)}

    def where(record: Record) -> bool:
        return (record.payload.get(DIVISION_NAME) == int(division)
                and (every or record.id in current))
    return list_response(sim.store, sim.options, sim.api_base, req, REVISIONS, project_id, where=where)


def spec_section_divisions(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    """The divisions of the project's live spec sections (paged, as the spec declares)."""
    project_id = project_scope(sim, req, None)
    found: dict[int, dict[str, Any]] = {}
    for section in sim.store.live("spec_section", project_id):
        number = str(section.payload.get("number") or "")[:2]
        found.setdefault(int(section.payload[DIVISION_NAME]),
                         {"number": number, "description": f"Division {number}"})
    divisions = [{"id": key, **value} for key, value in sorted(found.items())]
    page = positive_int(req, "page", 1)
    per_page = min(positive_int(req, "per_page", 100), 1000)
    chosen = divisions[(page - 1) * per_page:page * per_page]
    headers = [("Total", str(len(divisions))), ("Per-Page", str(per_page))]
    link = links(sim.api_base, req, page, per_page, len(divisions), sim.options.link_keeps_filters)
    return json_response(200, chosen, [*headers, ("Link", link)])


def me(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    return json_response(200, {"id": 300_001, "login": "service-account@eva00.example",
                               "name": "EVA-00 Service Account"})


def companies(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    return json_response(200, [{"id": sim.options.company_id, "name": sim.world.company_name,
                                "is_active": True}])


def download(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    blob = sim.blobs.get(int(params["file"]))
    if blob is None:
        raise HttpError(404, "File not found")
    return Response(302, b"", [("Location", sim.signed_url(blob.file_id)), ("Cache-Control", "no-store")])


ROUTES: list[Route] = [
    *[("GET", _compile(r.pattern), _lister(r)) for r in LISTS],
    ("GET", _compile(rf"/rest/v1\.1/projects/{P}/submittals/(?P<id>\d+)"), show("submittal")),
    ("GET", _compile(rf"/rest/v1\.0/projects/{P}/rfis/(?P<id>\d+)"), show("rfi")),
    ("GET", _compile(rf"/rest/v1\.[01]/projects/{P}"), project_show),
    ("GET", _compile(r"/rest/v1\.0/vendors/(?P<id>\d+)"), record_show("vendor", "company")),
    ("GET", _compile(rf"/rest/v1\.3/companies/{C}/users/(?P<id>\d+)"),
     record_show("company_user", "company")),
    ("GET", _compile(r"/rest/v1\.0/change_events/(?P<id>\d+)"), record_show("change_event", "project")),
    ("GET", _compile(r"/rest/v1\.0/change_order_packages/(?P<id>\d+)"),
     record_show("change_order_package", "project")),
    ("GET", _compile(r"/rest/v1\.0/potential_change_orders/(?P<id>\d+)"),
     record_show("potential_change_order", "project")),
    ("GET", _compile(r"/rest/v1\.0/images/(?P<id>\d+)"), record_show("image", "project")),
    ("GET", _compile(r"/rest/v1\.0/folders"), folder),
    ("GET", _compile(r"/rest/v1\.0/folders/(?P<folder>\d+)"), folder),
    ("GET", _compile(r"/rest/v1\.0/specification_section_revisions"), spec_section_revisions),
    ("GET", _compile(r"/rest/v1\.0/specification_section_divisions"), spec_section_divisions),
    ("GET", _compile(r"/rest/v1\.0/me"), me),
    ("GET", _compile(r"/rest/v1\.0/companies"), companies),
    ("GET", _compile(r"/rest/v1\.0/files/(?P<file>\d+)/download"), download),
    *hooks_api.ROUTES,
]


def dispatch(sim: SimState, req: Request) -> Response:
    answered = deleted.dispatch(sim, req)  # recycle bins, inactive lists, deleted-only views
    if answered is not None:
        return answered
    allowed = []
    for method, pattern, handler in ROUTES:
        match = pattern.match(req.path)
        if match is None:
            continue
        if method == req.method or (method == "GET" and req.method == "HEAD"):
            return handler(sim, req, {k: v for k, v in match.groupdict().items() if v is not None})
        allowed.append(method)
    if allowed:
        return Response(405, orjson.dumps({"errors": f"{req.method} is not allowed here"}),
                        [("Allow", ", ".join(sorted(set(allowed))))])
    raise HttpError(404, "404 Not Found")
