"""Tools switched off per project, as a company admin does in Procore's project settings.

Procore groups several resources under one tool: the daily log's many log kinds are one tool
("Daily Log"), drawing areas, drawings, sets and revisions are "Drawings", and so on. A tool
switched off in a project answers every one of its endpoints in that project with 403 and
Procore's error body (``{"errors": "..."}``); real projects are also seen answering 404, so
``tools_off_status`` (an option) picks which. The project itself, and every other tool in it,
answer as before.

Switched off at start by ``--tools-off`` (``TOOL[@WHICH],...``; WHICH is ``all``, ``N%`` of the
projects chosen by a stable hash, or ``ID+ID``) and at run time through
``/_sim/projects/{id}/tools/{tool}/off|on``.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterable
from types import MappingProxyType

from eva00.simulator.options import OptionError

# Procore tool -> (its display name, the path segments of its endpoints).
TOOLS = MappingProxyType({
    "daily_logs": ("Daily Log", ("daily_log_headers", "manpower_logs", "notes_logs", "weather_logs",
                                 "delivery_logs")),
    "meetings": ("Meetings", ("meetings",)),
    "rfis": ("RFIs", ("rfis",)),
    "submittals": ("Submittals", ("submittals",)),
    "drawings": ("Drawings", ("drawing_areas", "drawings", "drawing_revisions", "drawing_sets")),
    "photos": ("Photos", ("images", "image_categories")),
    "documents": ("Documents", ("documents", "folders")),
    "specifications": ("Specifications", ("specification_sections", "specification_section_revisions")),
    "change_events": ("Change Events", ("change_events",)),
    "change_orders": ("Change Orders", ("change_order_packages", "potential_change_orders",
                                        "prime_change_orders")),
    "tasks": ("Tasks", ("tasks",)),
    "directory": ("Directory", ("users",)),
})
# The simulator's kinds (catalogue.py) each tool serves: what a tool switched off hides.
TOOL_KINDS = MappingProxyType({
    "daily_logs": ("daily_log_header", "manpower_log", "notes_log", "weather_log", "delivery_log"),
    "meetings": ("meeting",), "rfis": ("rfi",), "submittals": ("submittal",),
    "drawings": ("drawing_area", "drawing", "drawing_revision", "drawing_set"),
    "photos": ("image", "image_category"), "documents": ("document",),
    "specifications": ("spec_section", "spec_section_revision"), "change_events": ("change_event",),
    "change_orders": ("change_order_package", "potential_change_order", "prime_change_order"),
    "tasks": ("task",), "directory": ("project_user",),
})
_SEGMENT_TOOL = {segment: tool for tool, (_name, segments) in TOOLS.items() for segment in segments}


class ToolError(OptionError):
    """A --tools-off value or a control call naming no tool."""


def tool_of(path: str) -> str | None:
    """The tool a project-scoped API path belongs to (None: the project itself, or no tool)."""
    for segment in path.split("/"):
        tool = _SEGMENT_TOOL.get(segment)
        if tool is not None:
            return tool
    return None


def refusal(tool: str) -> str:
    """The sentence of a refused tool's error body."""
    return f"The {TOOLS[tool][0]} tool is not enabled for this project"


def parse_spec(text: str, project_ids: Iterable[int]) -> dict[str, set[int]]:
    """``'daily_logs,meetings@10%'`` -> {tool: projects}; the percentage picks at least one project,
    by a hash of (tool, project id), so the same flags switch off the same projects every run."""
    projects = sorted(project_ids)
    chosen: dict[str, set[int]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        tool, _, which = item.partition("@")
        if tool not in TOOLS:
            raise ToolError(f"--tools-off: unknown tool {tool!r} (known: {', '.join(TOOLS)})")
        chosen.setdefault(tool, set()).update(_which(tool, which.strip() or "all", projects))
    return chosen


def _which(tool: str, which: str, projects: list[int]) -> set[int]:
    if which == "all":
        return set(projects)
    if which.endswith("%"):
        try:
            share = float(which[:-1]) / 100
        except ValueError:
            raise ToolError(f"--tools-off: {tool}@{which}: expected N%") from None
        count = max(1, math.ceil(share * len(projects))) if share > 0 else 0
        ranked = sorted(projects, key=lambda p: hashlib.sha256(f"{tool}:{p}".encode()).hexdigest())
        return set(ranked[:count])
    try:
        ids = {int(part) for part in which.split("+")}
    except ValueError:
        raise ToolError(f"--tools-off: {tool}@{which}: expected all, N% or ID+ID") from None
    unknown = ids - set(projects)
    if unknown:
        raise ToolError(f"--tools-off: {tool}@{which}: no such projects {sorted(unknown)}")
    return ids


class Tools:
    """Which tools are off in which projects; read by every project-scoped request."""

    def __init__(self, off: dict[str, set[int]] | None = None) -> None:
        self._lock = threading.Lock()
        self._off: dict[str, set[int]] = {tool: set(ids) for tool, ids in (off or {}).items()}

    def switch(self, tool: str, project_id: int, on: bool) -> None:
        if tool not in TOOLS:
            raise ToolError(f"unknown tool {tool!r} (known: {', '.join(TOOLS)})")
        with self._lock:
            if on:
                self._off.get(tool, set()).discard(project_id)
            else:
                self._off.setdefault(tool, set()).add(project_id)

    def refused(self, project_id: int, path: str) -> str | None:
        """The tool of this path if it is off in this project."""
        tool = tool_of(path)
        if tool is None:
            return None
        with self._lock:
            return tool if project_id in self._off.get(tool, ()) else None

    def to_json(self) -> dict[str, list[int]]:
        with self._lock:
            return {tool: sorted(ids) for tool, ids in sorted(self._off.items()) if ids}
