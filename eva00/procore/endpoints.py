"""Where each kind lives in Procore's API: one declarative entry per kind of eva00/kinds.py.

An entry says how to list the kind (path template, version, scope, fixed query, envelope, paging
and its largest page), whether the list takes ``filters[updated_at]`` or only a date window,
where the show endpoint is and whether it adds content, how deletions become visible, and which
fields hold file URLs (eva00/kinds.py). Fetchers read this table and nothing else, so a
path Procore changes is changed here once.

Templates use ``{company_id}``, ``{project_id}``, ``{parent_id}`` and (show paths) ``{id}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from eva00.kinds import KIND_TABLE, TOP_LEVEL


class Scope(str, Enum):
    COMPANY = "company"  # listed once per company
    PROJECT = "project"  # listed once per project
    PARENT = "parent"  # listed once per parent record (drawings of a drawing area)


class Envelope(str, Enum):
    BARE = "bare"  # the body is the list (v1.x)
    DATA = "data"  # {"data": [...]} with string ids (v2.x)


@dataclass(frozen=True)
class DeletedSignal:
    """How a deleted record shows; all empty means only by its absence from a full listing."""

    listing_path: str | None = None  # a separate list of deleted records (recycle bin, inactive list)
    listing_query: Mapping[str, str] = field(default_factory=dict)  # the list, asked for deleted only
    record_field: str | None = None  # a field set on deleted records still listed
    # The deleted listing takes filters[updated_at] (documented on the recycle bins and the lists
    # with include_deleted), so a poll asks only for its own window; else it is listed whole.
    updated_at: bool = False

    @property
    def has_listing(self) -> bool:
        """A request lists the deleted records (recycle bin, inactive list, a deleted-only view)."""
        return self.listing_path is not None or bool(self.listing_query)


@dataclass(frozen=True)
class ParentListing:
    """Parents that are no kind of the replica, listed from the API before their children
    (spec-section revisions require a division id: the divisions are listed first)."""

    path: str
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EndpointSpec:
    kind: str
    path: str
    scope: Scope
    query: Mapping[str, str] = field(default_factory=dict)
    envelope: Envelope = Envelope.BARE
    paged: bool = True  # False: one answer holds everything (folder tree, prime change orders)
    max_per_page: int = 1000
    supports_updated_at: bool = True
    date_window: bool = False  # start_date/end_date instead of filters[updated_at] (daily logs)
    show_path: str | None = None
    show_adds_content: bool = False  # the show answer has fields the list lacks
    deleted: DeletedSignal = field(default_factory=DeletedSignal)
    parent_kind: str | None = None
    parent_listing: ParentListing | None = None  # parents listed from the API, not from the replica
    file_fields: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        match = re.match(r"/rest/(v\d+\.\d+)/", self.path)
        return match.group(1) if match else ""

    def list_request(self, *, company_id: int, project_id: int | None = None,
                     parent_id: int | None = None) -> tuple[str, dict[str, str]]:
        """(path, fixed query) of the list for one company, project or parent."""
        values = _values(self, company_id, project_id, parent_id)
        return self.path.format(**values), {k: v.format(**values) for k, v in self.query.items()}

    def parent_listing_request(self, *, company_id: int,
                               project_id: int | None) -> tuple[str, dict[str, str]]:
        """(path, fixed query) of the list of parents (the divisions of one project)."""
        if self.parent_listing is None:
            raise ValueError(f"{self.kind} has no parent listing")
        values = {"company_id": company_id, "project_id": project_id}
        return (self.parent_listing.path.format(**values),
                {k: v.format(**values) for k, v in self.parent_listing.query.items()})

    def show_request(self, item_id: int, *, company_id: int, project_id: int | None = None,
                     parent_id: int | None = None) -> tuple[str, dict[str, str]]:
        if self.show_path is None:
            raise ValueError(f"{self.kind} has no show endpoint")
        values = _values(self, company_id, project_id, parent_id)
        path = self.show_path.format(id=item_id, **values)
        query = {k: v.format(**values) for k, v in self.query.items() if "{" in v}
        return path, query


def _values(spec: EndpointSpec, company_id: int, project_id: int | None,
            parent_id: int | None) -> dict[str, object]:
    if spec.scope is not Scope.COMPANY and project_id is None:
        raise ValueError(f"{spec.kind} is listed per project: project_id is required")
    if spec.scope is Scope.PARENT and parent_id is None:
        raise ValueError(f"{spec.kind} is listed per {spec.parent_kind or 'parent'}: parent_id is required")
    return {"company_id": company_id, "project_id": project_id, "parent_id": parent_id}


P = "/rest/v1.0/projects/{project_id}"
BY_PROJECT = {"project_id": "{project_id}"}
# The delete signals the published API documents (digest: ../shared/procore-oas.md); there is no
# filters[deleted] anywhere, and drawing revisions, images, tasks and daily logs have no deleted list.
DELETED_FILTER = DeletedSignal(listing_query={"filters[include_deleted]": "only"}, record_field="deleted_at",
                               updated_at=True)


def _spec(kind: str, path: str, scope: Scope = Scope.PROJECT, **options: object) -> EndpointSpec:
    return EndpointSpec(kind, path, scope, file_fields=TOP_LEVEL.get(kind, ()), **options)  # type: ignore[arg-type]


_SPECS = (
    _spec("project", "/rest/v1.1/projects", Scope.COMPANY,
          query={"company_id": "{company_id}", "filters[by_status]": "All"}, max_per_page=300,
          show_path="/rest/v1.0/projects/{id}"),  # the spec has a v1.0 show only
    _spec("vendor", "/rest/v1.0/vendors", Scope.COMPANY, query={"company_id": "{company_id}"},
          deleted=DeletedSignal(listing_path="/rest/v1.0/companies/{company_id}/vendors/inactive")),
    _spec("company_user", "/rest/v1.3/companies/{company_id}/users", Scope.COMPANY,
          deleted=DeletedSignal(listing_path="/rest/v1.0/companies/{company_id}/users/inactive")),
    _spec("project_user", P + "/users", supports_updated_at=False,
          deleted=DeletedSignal(listing_path=P + "/users/inactive")),
    _spec("spec_section", "/rest/v1.0/specification_sections", query=BY_PROJECT, paged=False,
          supports_updated_at=False),
    # The spec requires a division; all_revisions (a string) also lists the non-current revisions.
    _spec("spec_section_revision", "/rest/v1.0/specification_section_revisions", Scope.PARENT,
          query={**BY_PROJECT, "specification_section_division_id": "{parent_id}", "all_revisions": "true"},
          supports_updated_at=False,
          parent_listing=ParentListing("/rest/v1.0/specification_section_divisions", BY_PROJECT)),
    _spec("submittal", "/rest/v1.1/projects/{project_id}/submittals",
          show_path="/rest/v1.1/projects/{project_id}/submittals/{id}", show_adds_content=True,
          deleted=DeletedSignal(listing_path="/rest/v1.1/projects/{project_id}/submittals/recycle_bin",
                                updated_at=True)),
    _spec("rfi", P + "/rfis", show_path=P + "/rfis/{id}", show_adds_content=True,
          deleted=DeletedSignal(listing_path=P + "/rfis/recycle_bin", record_field="deleted_at",
                                updated_at=True)),
    _spec("change_event", "/rest/v1.0/change_events", query=BY_PROJECT, deleted=DELETED_FILTER),
    _spec("change_order_package", "/rest/v1.0/change_order_packages", query=BY_PROJECT,
          deleted=DELETED_FILTER),
    _spec("potential_change_order", "/rest/v1.0/potential_change_orders", query=BY_PROJECT,
          deleted=DELETED_FILTER),
    _spec("prime_change_order", P + "/prime_change_orders", paged=False, supports_updated_at=False),
    _spec("meeting", "/rest/v1.1/projects/{project_id}/meetings", supports_updated_at=False,
          deleted=DeletedSignal(listing_query={"deleted_only": "true"})),
    _spec("drawing_area", P + "/drawing_areas", supports_updated_at=False),
    _spec("drawing", "/rest/v1.1/drawing_areas/{parent_id}/drawings", Scope.PARENT, query=BY_PROJECT,
          supports_updated_at=False, parent_kind="drawing_area"),
    _spec("drawing_set", P + "/drawing_sets", supports_updated_at=False),
    # Obsolete revisions are listed only when asked: without them a full listing would look as if
    # the revisions of an obsoleted drawing were deleted.
    # The spec declares no updated_at filter here: listed whole each poll (which also finds deletes).
    _spec("drawing_revision", P + "/drawing_revisions", query={"with_obsolete": "true"},
          supports_updated_at=False),
    _spec("image", "/rest/v1.0/images", query=BY_PROJECT),
    _spec("image_category", "/rest/v1.0/image_categories", query=BY_PROJECT, supports_updated_at=False),
    _spec("document", P + "/documents",
          deleted=DeletedSignal(listing_query={"filters[is_in_recycle_bin]": "true"},
                                record_field="is_deleted", updated_at=True)),
    _spec("daily_log_header", P + "/daily_log_headers/index", supports_updated_at=False, date_window=True),
    _spec("manpower_log", P + "/manpower_logs", supports_updated_at=False, date_window=True),
    _spec("notes_log", P + "/notes_logs", supports_updated_at=False, date_window=True),
    _spec("weather_log", P + "/weather_logs", supports_updated_at=False, date_window=True),
    _spec("delivery_log", P + "/delivery_logs", supports_updated_at=False, date_window=True),
    _spec("task", "/rest/v1.0/tasks", query=BY_PROJECT),
)

ENDPOINTS: Mapping[str, EndpointSpec] = MappingProxyType({spec.kind: spec for spec in _SPECS})


def endpoint_for(kind: str) -> EndpointSpec:
    try:
        return ENDPOINTS[kind]
    except KeyError:
        raise ValueError(f"no endpoint for kind {kind!r}") from None


def missing_kinds() -> set[str]:
    """Kinds of eva00/kinds.py without an entry (empty when the registry is complete)."""
    return set(KIND_TABLE) - set(ENDPOINTS)
