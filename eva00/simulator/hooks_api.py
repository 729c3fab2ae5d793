"""The webhooks API on the API host: hooks (company or project scope), their triggers, their
deliveries, and the list of resources that offer events, in the shapes of Procore's published spec
(WebhooksHook, WebhooksTrigger, WebhooksDelivery, WebhooksResource)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eva00.simulator.listing import positive_int
from eva00.simulator.scopes import project_scope
from eva00.simulator.web import HttpError, Request, Response, json_body, json_response
from eva00.simulator.webhooks import Hook, offered_resources

if TYPE_CHECKING:
    from eva00.simulator.state import SimState

BASE = r"/rest/v1\.0/webhooks"


def _scope(sim: SimState, req: Request, body: dict[str, Any]) -> tuple[int, int | None]:
    company = body.get("company_id") or req.q("company_id")
    project = body.get("project_id") or req.q("project_id")
    if project is not None:
        return sim.options.company_id, project_scope(sim, req, str(project))
    if company is None:
        raise HttpError(400, "company_id or project_id is required")
    if str(company) != str(sim.options.company_id):
        raise HttpError(403, "App is not connected to this company")
    return int(company), None


def _hook(sim: SimState, req: Request, params: dict[str, str], body: dict[str, Any]) -> Hook:
    company, project = _scope(sim, req, body)
    hook = sim.webhooks.hooks.get(int(params["hook"]))
    if hook is None or hook.company_id != company or (project is not None and hook.project_id != project):
        raise HttpError(404, "Hook not found")
    return hook


def list_hooks(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    company, project = _scope(sim, req, {})
    namespace, version = req.q("namespace"), req.q("api_version")
    hooks = [h.to_json() for h in sim.webhooks.hooks.values()
             if h.company_id == company and h.project_id == project
             and (namespace in (None, "*") or h.namespace == namespace)  # "*": every namespace
             and (version is None or h.api_version == version)]
    return json_response(200, hooks)


def create_hook(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    body = json_body(req)
    company, project = _scope(sim, req, body)
    spec = body.get("hook")
    if not isinstance(spec, dict):
        raise HttpError(400, "hook is required")
    try:
        hook = sim.webhooks.add_hook(company, project, spec)
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None
    return json_response(201, hook.to_json())


def update_hook(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    body = json_body(req)
    hook = _hook(sim, req, params, body)
    try:
        sim.webhooks.update_hook(hook, body.get("hook") or {})
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None
    return json_response(200, hook.to_json())


def delete_hook(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    hook = _hook(sim, req, params, json_body(req))
    with sim.webhooks.lock:
        sim.webhooks.hooks.pop(hook.id, None)
    return Response(204, b"")


def list_triggers(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    return json_response(200, _hook(sim, req, params, {}).triggers)


def create_trigger(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    body = json_body(req)
    hook = _hook(sim, req, params, body)
    spec = body.get("trigger")
    if not isinstance(spec, dict):
        raise HttpError(400, "trigger is required")
    try:
        return json_response(201, sim.webhooks.add_trigger(hook, spec))
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None


def delete_trigger(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    hook = _hook(sim, req, params, json_body(req))
    before = len(hook.triggers)
    hook.triggers[:] = [t for t in hook.triggers if t["id"] != int(params["trigger"])]
    if len(hook.triggers) == before:
        raise HttpError(404, "Trigger not found")
    return Response(204, b"")


STATUS_FILTERS = ("any", "successful", "failing", "discarded")


def list_deliveries(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    """Newest first, cursor paged as documented: ``page_size`` (default 100) and ``page_start``,
    the ``event_id`` of the last item of the previous page; no page/per_page, no Total. A delivery
    not attempted yet is listed (under ``any`` only) with a null outcome."""
    hook = _hook(sim, req, params, {})
    wanted = req.q("filters[status]") or "any"
    if wanted not in STATUS_FILTERS:
        raise HttpError(400, f"filters[status] must be one of {list(STATUS_FILTERS)}")
    page_size = min(positive_int(req, "page_size", 100), 1000)
    start = req.q("page_start")
    if start is not None and not start.isdigit():
        raise HttpError(400, "page_start must be an integer")
    with sim.webhooks.lock:
        found = [d for d in reversed(sim.webhooks.deliveries) if d.hook_id == hook.id
                 and (wanted == "any" or d.status_filter == wanted)
                 and (start is None or d.id < int(start))]
    return json_response(200, [d.to_json() for d in found[:page_size]])


def resources(sim: SimState, req: Request, params: dict[str, str]) -> Response:
    _scope(sim, req, {})
    return json_response(200, offered_resources())


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(BASE + pattern + r"/?\Z")


Handler = Callable[["SimState", Request, dict[str, str]], Response]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", _c("/hooks"), list_hooks),
    ("POST", _c("/hooks"), create_hook),
    # The spec has no GET (nor PUT) of one hook: /hooks/{id} is PATCH and DELETE only.
    ("PATCH", _c(r"/hooks/(?P<hook>\d+)"), update_hook),
    ("DELETE", _c(r"/hooks/(?P<hook>\d+)"), delete_hook),
    ("GET", _c(r"/hooks/(?P<hook>\d+)/triggers"), list_triggers),
    ("POST", _c(r"/hooks/(?P<hook>\d+)/triggers"), create_trigger),
    ("DELETE", _c(r"/hooks/(?P<hook>\d+)/triggers/(?P<trigger>\d+)"), delete_trigger),
    ("GET", _c(r"/hooks/(?P<hook>\d+)/deliveries"), list_deliveries),
    ("GET", _c("/resources"), resources),
]
