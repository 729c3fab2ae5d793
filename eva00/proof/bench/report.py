"""One benchmark report: every figure, its goal and whether it was met, as Markdown and JSON.

Each benchmark module in this package exposes ``run(tmp_dir: Path) -> list[dict]`` returning
figures ``{"name", "value", "unit", "goal", "met"}``; goals are written as text ("<= 1.10",
">= 500") so a reader sees what was asked next to what was measured.
"""

from __future__ import annotations

import importlib
import json
import platform
import shutil
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# In the order they run; a module missing from a checkout is reported, not skipped silently.
MODULES = ("simulator", "procore_limiter", "differ", "pdf_import", "downloader", "full_sync",
           "tools_off", "webhook_freshness", "document_sandbox", "deletes", "freshness_scale",
           "cost_scale")


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    goal: str
    met: bool

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figure:
        return cls(str(data["name"]), float(data["value"]), str(data["unit"]), str(data["goal"]),
                   bool(data["met"]))


def meets(value: float, goal: str) -> bool:
    """Evaluate a goal such as '>= 0.9', '<= 1.10', '== 0' or '< 0.5' against a value."""
    op, _, number = goal.strip().partition(" ")
    target = float(number)
    return {">=": value >= target, "<=": value <= target, ">": value > target,
            "<": value < target, "==": value == target}[op]


def ratio_to_goal(value: float, goal: str) -> float | None:
    """How far a value is from its goal, as a ratio where >= 1 means met: value/target for
    '>=' goals, target/value for '<=' goals; None where a ratio says nothing (a goal of 0)."""
    op, _, number = goal.strip().partition(" ")
    target = float(number)
    if op in (">=", ">"):
        return value / target if target else None
    if op in ("<=", "<"):
        return (target / value if value else float("inf")) if target else None
    return None


def run_all(out_dir: Path, names: Sequence[str] = MODULES) -> list[Figure]:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    for name in names:
        work = out_dir / "work" / name
        # Each benchmark starts from nothing: a database or a run left by an earlier one would
        # be resumed (a full sync already complete costs nothing) instead of measured.
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(f"eva00.proof.bench.{name}")
        except ModuleNotFoundError:
            print(f"bench {name}: not present in this checkout")
            continue
        try:
            results = [Figure.from_dict(item) for item in module.run(work)]
        except Exception:
            traceback.print_exc()
            results = [Figure(f"{name}: benchmark ran to completion", 0, "bool", "== 1", False)]
        figures += results
        print(f"bench {name}: {len(results)} figures in {time.monotonic() - started:.1f} s")
    write(out_dir, figures)
    return figures


def write(out_dir: Path, figures: Sequence[Figure]) -> None:
    (out_dir / "report.json").write_text(json.dumps(
        [{**asdict(f), "ratio_to_goal": _finite(ratio_to_goal(f.value, f.goal))} for f in figures],
        indent=2) + "\n")
    lines = [f"# EVA-00 Sync benchmark report ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "", f"Machine: {platform.machine()}, {_cores()} cores, Python {platform.python_version()}.",
             "", "Ratio to goal: >= 1 means met, and by how much (value/target for a minimum,",
             "target/value for a maximum); '-' where the goal is an exact count such as 0 violations.",
             "", "| Figure | Value | Unit | Goal | Ratio to goal | Met |", "|---|---:|---|---|---:|---|"]
    for f in figures:
        ratio = ratio_to_goal(f.value, f.goal)
        shown = "-" if ratio is None else "inf" if ratio == float("inf") else f"{ratio:.3g}"
        met_text = "yes" if f.met else "NO"
        lines.append(f"| {f.name} | {f.value:.4g} | {f.unit} | {f.goal} | {shown} | {met_text} |")
    met = sum(f.met for f in figures)
    lines += ["", f"{met} of {len(figures)} goals met."]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")


def _finite(ratio: float | None) -> float | None:
    return None if ratio is None or ratio == float("inf") else round(ratio, 4)


def _cores() -> int:
    import os

    return os.cpu_count() or 0
