"""Which company or project a request may see: the checks every API handler runs first (a
project-scoped request also passes its tool's switch, eva00/simulator/tools.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eva00.simulator.tools import refusal
from eva00.simulator.web import HttpError, Request

if TYPE_CHECKING:
    from eva00.simulator.state import SimState


def company_scope(sim: SimState, req: Request, params: dict[str, str]) -> int:
    text = params.get("company") or req.q("company_id")
    if not text:
        raise HttpError(400, "company_id is required")
    if not text.isdigit() or int(text) != sim.options.company_id:
        raise HttpError(403, "App is not connected to this company")
    return int(text)


def project_scope(sim: SimState, req: Request, from_path: str | None) -> int:
    text = from_path or req.q("project_id")
    if not text:
        raise HttpError(400, "project_id is required")
    if not text.isdigit():
        raise HttpError(400, "project_id must be an integer")
    project = sim.store.project(int(text))
    if project is None:
        raise HttpError(404, "Project not found")
    if project.id in sim.store.forbidden:
        raise HttpError(403, "You do not have permission to access this project")
    tool = sim.tools.refused(project.id, req.path)
    if tool is not None:
        req.meta["tool_off"] = tool
        raise HttpError(sim.options.tools_off_status, refusal(tool))
    return project.id
