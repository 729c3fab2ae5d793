"""The chaos run's report: one row per scenario with its verdict and every non-zero figure, and
the full checker tables below (Markdown), plus the same as JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from eva00.proof.chaos.scenarios import Outcome
from eva00.proof.chaos.stack import Scale


def write_report(out_dir: Path, scale: Scale, outcomes: Sequence[Outcome]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(
        {"scale": scale.name, "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "scenarios": [o.to_dict() for o in outcomes]}, indent=2, default=str) + "\n")
    at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"# EVA-00 chaos report ({scale.name} scale, {at})", "",
             f"Data set: {scale.projects} projects, {scale.items} items; churn {scale.churn_per_s:g}/s;"
             f" simulator limit {scale.rate[0]} per {scale.rate[1]:g} s.", "",
             "| # | Scenario | Verdict | Seconds | Non-zero figures | Problems |",
             "|---|---|---|---:|---|---|"]
    for o in outcomes:
        nonzero = ", ".join(f"{k}={v}" for k, v in (o.report.figures.items() if o.report else []) if v)
        lines.append(f"| {o.number} | {o.name} | {'PASS' if o.passed else 'FAIL'} | {o.seconds:.0f} |"
                     f" {nonzero or '-'} | {'; '.join(o.problems) or '-'} |")
    for o in outcomes:
        lines += ["", f"## {o.number}. {o.name}", ""] + [f"- {note}" for note in o.notes]
        if o.report is not None:
            lines += ["", o.report.table()]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
