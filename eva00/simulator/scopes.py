"""Which company or project a request may see: the checks every API handler runs first."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    return project.id
