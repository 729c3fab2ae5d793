"""Every path and query parameter eva00/procore/endpoints.py names is one the published spec
documents (docs/procore-oas.md): a guess about Procore's API fails here, not in production."""

from __future__ import annotations

import pytest

from eva00.procore.endpoints import ENDPOINTS, EndpointSpec
from tests.contract.digest import Endpoint, normalise, parse

DOCUMENTED = parse()


def _calls(spec: EndpointSpec) -> list[tuple[str, str, set[str]]]:
    """(what, path template, query parameter names) of every request the entry describes."""
    listed = set(spec.query)
    if spec.paged:
        listed |= {"page", "per_page"}
    if spec.supports_updated_at:
        listed.add("filters[updated_at]")
    if spec.date_window:
        listed |= {"start_date", "end_date"}
    calls = [("list", spec.path, listed)]
    if spec.show_path:
        calls.append(("show", spec.show_path, {k for k, v in spec.query.items() if "{" in v}))
    if spec.deleted.listing_path:
        calls.append(("deleted listing", spec.deleted.listing_path, set(spec.deleted.listing_query)))
    elif spec.deleted.listing_query:
        calls.append(("deleted view", spec.path, set(spec.query) | set(spec.deleted.listing_query)))
    if spec.parent_listing:
        calls.append(("parent listing", spec.parent_listing.path, set(spec.parent_listing.query)
                      | {"page", "per_page"}))
    return calls


@pytest.mark.parametrize("kind", sorted(ENDPOINTS))
def test_every_path_and_parameter_of_the_kind_is_documented(kind: str) -> None:
    for what, path, params in _calls(ENDPOINTS[kind]):
        documented = DOCUMENTED.get(normalise(path))
        assert documented is not None, f"{kind} {what}: GET {path} is not in the spec digest"
        undocumented = params - documented.params
        assert not undocumented, f"{kind} {what}: GET {path} does not document {sorted(undocumented)}"
        if what == "list":
            assert spec_paging_agrees(ENDPOINTS[kind], documented), f"{kind}: paging differs from the spec"


def spec_paging_agrees(spec: EndpointSpec, documented: Endpoint) -> bool:
    return spec.paged == documented.paged


@pytest.mark.parametrize("kind", sorted(ENDPOINTS))
def test_every_required_parameter_of_the_kinds_calls_is_sent(kind: str) -> None:
    for what, path, params in _calls(ENDPOINTS[kind]):
        documented = DOCUMENTED[normalise(path)]
        missing = documented.required - params
        assert not missing, f"{kind} {what}: GET {path} requires {sorted(missing)}"


def test_a_parameter_the_spec_does_not_document_is_caught() -> None:
    documented = parse("- **GET `/rest/v1.0/projects/{project_id}/drawing_revisions`** — list\n"
                       "  - paging: page:i, per_page:i (+headers); other: **with_obsolete:b**\n")
    drawing_revisions = documented[normalise("/rest/v1.0/projects/{p}/drawing_revisions")]
    assert {"filters[deleted]"} - drawing_revisions.params == {"filters[deleted]"}
    assert drawing_revisions.params == {"page", "per_page", "with_obsolete"} and drawing_revisions.headers
