"""The endpoint registry covers every kind and builds the paths and queries Procore expects."""

from __future__ import annotations

import pytest

from eva00.kinds import COMPANY_LEVEL_KINDS, KIND_TABLE
from eva00.procore.endpoints import ENDPOINTS, Scope, endpoint_for, missing_kinds


def test_every_kind_of_the_replica_has_exactly_one_endpoint() -> None:
    assert missing_kinds() == set()
    assert set(ENDPOINTS) == set(KIND_TABLE)


def test_company_level_kinds_are_listed_once_per_company() -> None:
    company = {kind for kind, spec in ENDPOINTS.items() if spec.scope is Scope.COMPANY}
    assert company == set(COMPANY_LEVEL_KINDS)


def test_versions_are_read_from_the_paths() -> None:
    assert endpoint_for("project").version == "v1.1"
    assert endpoint_for("rfi").version == "v1.0"
    assert endpoint_for("company_user").version == "v1.3"


def test_a_project_list_fills_the_path_and_the_query_from_its_template() -> None:
    path, query = endpoint_for("rfi").list_request(company_id=7, project_id=42)
    assert (path, query) == ("/rest/v1.0/projects/42/rfis", {})
    path, query = endpoint_for("change_event").list_request(company_id=7, project_id=42)
    assert (path, query) == ("/rest/v1.0/change_events", {"project_id": "42"})
    path, query = endpoint_for("project").list_request(company_id=7)
    assert query == {"company_id": "7", "filters[by_status]": "All"}


def test_drawings_are_listed_per_drawing_area_and_need_the_parent() -> None:
    spec = endpoint_for("drawing")
    assert spec.scope is Scope.PARENT and spec.parent_kind == "drawing_area"
    assert spec.list_request(company_id=7, project_id=42, parent_id=9) == (
        "/rest/v1.1/drawing_areas/9/drawings", {"project_id": "42"})
    with pytest.raises(ValueError, match="parent_id"):
        spec.list_request(company_id=7, project_id=42)


def test_spec_section_revisions_are_listed_per_division_with_every_revision() -> None:
    spec = endpoint_for("spec_section_revision")
    assert spec.scope is Scope.PARENT and spec.parent_kind is None
    assert spec.parent_listing_request(company_id=7, project_id=42) == (
        "/rest/v1.0/specification_section_divisions", {"project_id": "42"})
    assert spec.list_request(company_id=7, project_id=42, parent_id=3) == (
        "/rest/v1.0/specification_section_revisions",
        {"project_id": "42", "specification_section_division_id": "3", "all_revisions": "true"})
    with pytest.raises(ValueError, match="has no parent listing"):
        endpoint_for("drawing").parent_listing_request(company_id=7, project_id=42)


def test_show_paths_keep_the_scope_parameters_the_show_needs() -> None:
    assert endpoint_for("submittal").show_request(5, company_id=7, project_id=42) == (
        "/rest/v1.1/projects/42/submittals/5", {})
    assert endpoint_for("project").show_request(42, company_id=7) == (
        "/rest/v1.0/projects/42", {"company_id": "7"})
    with pytest.raises(ValueError, match="no show endpoint"):
        endpoint_for("task").show_request(5, company_id=7, project_id=42)


def test_lists_that_return_everything_at_once_are_marked_unpaged() -> None:
    assert {k for k, s in ENDPOINTS.items() if not s.paged} == {"spec_section", "prime_change_order"}


def test_show_endpoints_that_add_content_are_rfis_and_submittals() -> None:
    assert {k for k, s in ENDPOINTS.items() if s.show_adds_content} == {"rfi", "submittal"}


def test_daily_logs_take_a_date_window_not_an_updated_at_filter() -> None:
    for kind in ("daily_log_header", "manpower_log", "notes_log", "weather_log", "delivery_log"):
        spec = endpoint_for(kind)
        assert spec.date_window and not spec.supports_updated_at


def test_file_fields_come_from_the_file_reference_table() -> None:
    assert endpoint_for("drawing_revision").file_fields == ("pdf_url",)
    assert endpoint_for("image").file_fields == ("url",)
    assert endpoint_for("rfi").file_fields == ()
