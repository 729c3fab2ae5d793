"""Control and inspection under /_sim (README.md documents each): health, ledger, ground truth,
figures, mutations, faults, run-time configuration, project permissions, tools switched off per
project, token expiry and
standalone files. No authentication, no rate limit, not in the ledger. Loopback only."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from eva00.simulator.catalogue import KINDS
from eva00.simulator.faults import FaultError
from eva00.simulator.mutations import MutationError
from eva00.simulator.options import OptionError
from eva00.simulator.tools import TOOLS, ToolError
from eva00.simulator.web import HttpError, Request, Response, error, json_body, json_response

if TYPE_CHECKING:
    from eva00.simulator.state import SimState

Handler = Callable[["SimState", Request, "re.Match[str]"], Response]


def health(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    return json_response(200, {"ok": True, "records": sim.store.count(), "files": len(sim.blobs),
                               "api_base": sim.api_base, "storage_base": sim.storage_base,
                               "file_base": sim.file_base,
                               "company_id": sim.options.company_id})


def ledger(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    try:
        since, limit = int(req.q("since") or 0), int(req.q("limit") or 10_000)
    except ValueError:
        raise HttpError(400, "since and limit must be integers") from None
    entries, last = sim.ledger.since(since, limit)
    return json_response(200, {"entries": entries, "next": last})


def truth(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    kinds = set(filter(None, (req.q("kinds") or "").split(","))) or None
    unknown = sorted((kinds or set()) - set(KINDS))
    if unknown:
        raise HttpError(400, f"unknown kinds {unknown}")
    project = req.q("project_id")
    if project is not None and not project.isdigit():
        raise HttpError(400, "project_id must be an integer")
    with sim.store.lock:
        found = sim.store.truth(kinds, int(project) if project else None)
    return Response(200, orjson.dumps(found))


def stats(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    return json_response(200, sim.figures())


def mutate(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    try:
        changes = sim.mutator.apply(json_body(req))
    except MutationError as exc:
        raise HttpError(422, str(exc)) from None
    return json_response(200, {"changed": [c.to_json() for c in changes]})


def faults(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    if req.method == "DELETE":
        sim.faults.clear()
        return json_response(200, {"faults": []})
    if req.method == "POST":
        try:
            sim.faults.add(json_body(req))
        except FaultError as exc:
            raise HttpError(422, str(exc)) from None
    return json_response(200, {"faults": sim.faults.active()})


def config(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    if req.method == "POST":
        try:
            sim.options.update(json_body(req))
        except OptionError as exc:
            raise HttpError(422, str(exc)) from None
        if json_body(req).get("reset_rate_limits"):
            sim.limiter.reset()
    return json_response(200, sim.options.to_json())


def permission(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    project_id = int(m.group("project"))
    if sim.store.project(project_id) is None:
        raise HttpError(404, "no such project")
    if m.group("what") == "forbid":
        sim.store.forbidden.add(project_id)
    else:
        sim.store.forbidden.discard(project_id)
    return json_response(200, {"forbidden_projects": sorted(sim.store.forbidden)})


def tools(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    """GET: which tools are off where; POST .../tools/{tool}/off|on switches one in one project."""
    if req.method == "POST":
        project_id = int(m.group("project"))
        if sim.store.project(project_id) is None:
            raise HttpError(404, "no such project")
        try:
            sim.tools.switch(m.group("tool"), project_id, on=m.group("what") == "on")
        except ToolError as exc:
            raise HttpError(422, str(exc)) from None
    return json_response(200, {"tools_off": sim.tools.to_json(), "status": sim.options.tools_off_status,
                               "tools": list(TOOLS)})


def expire_tokens(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    return json_response(200, {"expired": sim.oauth.expire_all()})


def reset_limits(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    sim.limiter.reset()
    return json_response(200, {"ok": True})


def new_file(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    body = json_body(req)
    fmt = body.get("format", "pdf")
    if fmt not in ("pdf", "jpeg", "png"):
        raise HttpError(422, "format must be pdf, jpeg or png")
    try:
        size = int(body.get("size_bytes", sim.options.file_size_bytes))
    except (TypeError, ValueError):
        raise HttpError(422, "size_bytes must be an integer") from None
    blob = sim.blobs.add(fmt, size, str(body.get("title") or f"eva00 file {time.time():.0f}"))
    return json_response(201, _file_json(sim, blob.file_id, with_sha=False))


def file_info(sim: SimState, req: Request, m: re.Match[str]) -> Response:
    if sim.blobs.get(int(m.group("file"))) is None:
        raise HttpError(404, "no such file")
    return json_response(200, _file_json(sim, int(m.group("file")), with_sha=True))


def _file_json(sim: SimState, file_id: int, with_sha: bool) -> dict[str, Any]:
    blob = sim.blobs.get(file_id)
    assert blob is not None
    found = {"file_id": str(file_id), "url": sim.world.file_url(file_id),
             "storage_url": sim.signed_url(file_id),
             "size_bytes": blob.size, "content_type": blob.content_type, "etag": blob.etag}
    if with_sha:
        found["sha256"] = sim.blobs.sha256(blob)
    return found


ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"/_sim/health/?\Z"), health),
    ("GET", re.compile(r"/_sim/ledger/?\Z"), ledger),
    ("GET", re.compile(r"/_sim/truth/?\Z"), truth),
    ("GET", re.compile(r"/_sim/stats/?\Z"), stats),
    ("POST", re.compile(r"/_sim/mutate/?\Z"), mutate),
    ("GET POST DELETE", re.compile(r"/_sim/faults/?\Z"), faults),
    ("GET POST", re.compile(r"/_sim/config/?\Z"), config),
    ("POST", re.compile(r"/_sim/projects/(?P<project>\d+)/(?P<what>forbid|allow)/?\Z"), permission),
    ("GET", re.compile(r"/_sim/tools/?\Z"), tools),
    ("POST", re.compile(r"/_sim/projects/(?P<project>\d+)/tools/(?P<tool>\w+)/(?P<what>off|on)/?\Z"), tools),
    ("POST", re.compile(r"/_sim/tokens/expire/?\Z"), expire_tokens),
    ("POST", re.compile(r"/_sim/rate_limits/reset/?\Z"), reset_limits),
    ("POST", re.compile(r"/_sim/files/?\Z"), new_file),
    ("GET", re.compile(r"/_sim/files/(?P<file>\d+)/?\Z"), file_info),
]


def handle(sim: SimState, req: Request) -> Response:
    for methods, pattern, handler in ROUTES:
        match = pattern.match(req.path)
        if match is None:
            continue
        if req.method not in methods.split():
            return error(405, f"{req.method} is not allowed here", [("Allow", ", ".join(methods.split()))])
        try:
            return handler(sim, req, match)
        except HttpError as exc:
            return error(exc.status, exc.message)
    return error(404, "no such control endpoint (see eva00/simulator/README.md)")
