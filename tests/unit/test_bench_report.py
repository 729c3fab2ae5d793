"""The benchmark report: goals are evaluated from their text and every figure gets its ratio to the
goal, in Markdown and in JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eva00.proof.bench.report import Figure, meets, ratio_to_goal, run_all, write


@pytest.mark.parametrize(("value", "goal", "met"), [
    (0.95, ">= 0.90", True), (0.85, ">= 0.90", False), (1.0, "<= 1.10", True), (1.2, "<= 1.10", False),
    (0, "== 0", True), (1, "== 0", False)])
def test_a_goal_written_as_text_is_evaluated_against_the_value(value: float, goal: str, met: bool) -> None:
    assert meets(value, goal) is met


def test_the_ratio_to_a_goal_is_at_least_one_exactly_when_a_minimum_or_maximum_is_met() -> None:
    assert ratio_to_goal(1000, ">= 500") == 2.0
    assert ratio_to_goal(250, ">= 500") == 0.5
    assert ratio_to_goal(1.0, "<= 1.10") == pytest.approx(1.1)
    assert ratio_to_goal(2.2, "<= 1.10") == pytest.approx(0.5)
    assert ratio_to_goal(0, "== 0") is None and ratio_to_goal(3, "<= 0") is None


def test_the_report_lists_every_figure_with_its_goal_and_ratio_in_markdown_and_json(tmp_path: Path) -> None:
    figures = [Figure("list requests per second", 4048, "req/s", ">= 500", True),
               Figure("rate-limit violations", 0, "requests", "== 0", True)]
    write(tmp_path, figures)
    rows = json.loads((tmp_path / "report.json").read_text())
    assert [set(r) for r in rows] == [{"name", "value", "unit", "goal", "met", "ratio_to_goal"}] * 2
    assert rows[0]["ratio_to_goal"] == pytest.approx(8.096) and rows[1]["ratio_to_goal"] is None
    markdown = (tmp_path / "report.md").read_text()
    assert "| list requests per second | 4048 | req/s | >= 500 | 8.1 | yes |" in markdown
    assert "2 of 2 goals met." in markdown


def test_each_benchmark_starts_in_an_empty_work_directory_even_after_an_earlier_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    seen: list[list[str]] = []

    def run(work: Path) -> list[dict[str, object]]:
        seen.append(sorted(p.name for p in work.iterdir()))
        (work / "stack").mkdir()  # what a benchmark's database leaves behind
        return [{"name": "probe", "value": 1, "unit": "x", "goal": "== 1", "met": True}]

    monkeypatch.setitem(sys.modules, "eva00.proof.bench._probe", types.SimpleNamespace(run=run))
    run_all(tmp_path, ["_probe"])
    run_all(tmp_path, ["_probe"])
    assert seen == [[], []]
