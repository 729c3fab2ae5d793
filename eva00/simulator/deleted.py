"""Procore's lists of deleted records, as the published API documents them (digest: procore-oas.md).

- Recycle bins: RFIs (v1.0) and submittals (v1.0 and v1.1), paged, with ``filters[updated_at]``
  (a deleted record's updated_at there is its deletion time).
- Inactive lists: company vendors and company users (v1.0, path form), project users; paged,
  without ``filters[updated_at]``.
- Meetings with ``deleted_only=true``: the deleted meetings ungrouped, wrapped as
  ``{"meetings": [...]}`` (the description's shape, not the grouped list's).

The other documented signals are views of a kind's own list (``filters[include_deleted]`` on
change events, change order packages and PCOs; ``filters[is_in_recycle_bin]`` on documents) and
stay with those lists in api.py. ``filters[deleted]`` is documented nowhere and selects nothing.
Each list here shows what the churn and POST /_sim/mutate delete, at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eva00.simulator.listing import ListSpec, list_response
from eva00.simulator.scopes import company_scope, project_scope
from eva00.simulator.web import Request, Response

if TYPE_CHECKING:
    from eva00.simulator.state import SimState

P = r"(?P<project>\d+)"
C = r"(?P<company>\d+)"


@dataclass(frozen=True)
class DeletedList:
    pattern: re.Pattern[str]
    spec: ListSpec
    company: bool  # listed per company (inactive vendors and users), else per project
    # Only when this query parameter has this value (meetings' deleted_only); else the path alone.
    switch: tuple[str, str] | None = None
    wrap: str | None = None  # the answer is {wrap: [...]} instead of a bare list


def _route(pattern: str, spec: ListSpec, company: bool = False, switch: tuple[str, str] | None = None,
           wrap: str | None = None) -> DeletedList:
    return DeletedList(re.compile(pattern + r"/?\Z"), spec, company, switch, wrap)


DELETED_LISTS = (
    _route(rf"/rest/v1\.0/projects/{P}/rfis/recycle_bin", ListSpec("rfi")),
    _route(rf"/rest/v1\.[01]/projects/{P}/submittals/recycle_bin", ListSpec("submittal")),
    _route(rf"/rest/v1\.0/companies/{C}/vendors/inactive", ListSpec("vendor", updated_filter=False), True),
    _route(rf"/rest/v1\.0/companies/{C}/users/inactive", ListSpec("company_user", updated_filter=False),
           True),
    _route(rf"/rest/v1\.0/projects/{P}/users/inactive", ListSpec("project_user", updated_filter=False)),
    _route(rf"/rest/v1\.1/projects/{P}/meetings", ListSpec("meeting", updated_filter=False),
           switch=("deleted_only", "true"), wrap="meetings"),
)


def dispatch(sim: SimState, req: Request) -> Response | None:
    """The answer of a deleted listing, or None when the request asks for none (the caller routes it)."""
    if req.method not in ("GET", "HEAD"):
        return None
    for route in DELETED_LISTS:
        match = route.pattern.match(req.path)
        if match is None:
            continue
        if route.switch is not None and (req.q(route.switch[0]) or "").lower() != route.switch[1]:
            return None
        return _answer(sim, req, route, match.groupdict())
    return None


def _answer(sim: SimState, req: Request, route: DeletedList, params: dict[str, str]) -> Response:
    if route.company:
        company_scope(sim, req, params)
        scope = None
    else:
        scope = project_scope(sim, req, params.get("project"))
    response = list_response(sim.store, sim.options, sim.api_base, req, route.spec, scope, "deleted")
    if route.wrap is not None:
        response.body = _wrapped(route.wrap, response.body)
    return response


def _wrapped(name: str, body: object) -> bytes:
    assert isinstance(body, bytes), "list_response answers one bytes body"
    return b'{"' + name.encode() + b'":' + body + b"}"
