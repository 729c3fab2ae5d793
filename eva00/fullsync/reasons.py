"""Why a full-sync run is incomplete, for people: one line per (kind, reason).

A refused project refuses every listing of it, and daily logs are listed in date windows, so one
cause repeats once per window and project (hundreds of times in one run). The raw errors stay as
they are (`error_list` in the JSON, the run's stored ``reason``); what is printed is
:func:`aggregate`'s groups: the kind, the reason, how many projects and jobs it hit, and a few
example project ids.

Pure: no database, no clock; the queries that find the errors are in eva00/fullsync/run.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

EXAMPLES = 3  # project ids shown per group


@dataclass(frozen=True)
class RunError:
    """One job's error: its kind and project, the reason without them, and the raw sentence."""

    kind: str
    project_id: int | None  # None: a company-level kind
    reason: str  # "refused (403: GET rfi:list answered 403)"
    sentence: str  # "rfi in project 10001 refused (403: GET rfi:list answered 403)"


@dataclass(frozen=True)
class ReasonGroup:
    """Every error of one kind with one reason."""

    kind: str
    reason: str
    projects: int  # distinct projects hit (0: company level only)
    jobs: int  # errors (refused jobs or listings: one per date window, page, ...)
    examples: tuple[int, ...]  # up to EXAMPLES project ids, smallest first

    def line(self) -> str:
        """``rfi: refused (403: ...) in 12 projects (e.g. 10001, 10002, 10003), 40 jobs``."""
        return f"{self.kind}: {self.reason} {where(self.projects, self.examples)}" + (
            f", {self.jobs} jobs" if self.jobs > max(self.projects, 1) else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "projects": self.projects,
                "jobs": self.jobs, "examples": list(self.examples)}


def where(count: int, examples: Sequence[int | str]) -> str:
    """``in 1 project (10001)``, ``in 5 projects (e.g. 1, 2, 3)``, or ``company-wide``."""
    if count == 0:
        return "company-wide"
    shown = ", ".join(str(e) for e in examples)
    prefix = "e.g. " if count > len(examples) else ""
    return f"in {count} project{'s' if count != 1 else ''} ({prefix}{shown})"


def aggregate(errors: Iterable[RunError], examples: int = EXAMPLES) -> list[ReasonGroup]:
    """One group per (kind, reason), the widest first (most projects, then most jobs)."""
    projects: dict[tuple[str, str], set[int]] = {}
    jobs: dict[tuple[str, str], int] = {}
    for error in errors:
        key = (error.kind, error.reason)
        hit = projects.setdefault(key, set())
        if error.project_id is not None:
            hit.add(error.project_id)
        jobs[key] = jobs.get(key, 0) + 1
    groups = [ReasonGroup(kind, reason, len(hit), jobs[(kind, reason)], tuple(sorted(hit)[:examples]))
              for (kind, reason), hit in projects.items()]
    return sorted(groups, key=lambda g: (-g.projects, -g.jobs, g.kind, g.reason))


def lines(groups: Iterable[dict[str, Any]]) -> list[str]:
    """The printed lines of groups in their JSON form (``to_dict``), as status reports carry them."""
    return [ReasonGroup(g["kind"], g["reason"], g["projects"], g["jobs"], tuple(g["examples"])).line()
            for g in groups]
