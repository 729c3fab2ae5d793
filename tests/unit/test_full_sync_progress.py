"""The full sync's output off a terminal and its reasons: progress lines and JSON lines from a
status, at most one per interval, and many identical errors aggregated into one line."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from rich.console import Console

from eva00.fullsync.progress import (
    PROGRESS_KEYS,
    SUMMARY_KEYS,
    LineReport,
    progress_line,
    progress_record,
)
from eva00.fullsync.reasons import RunError, aggregate, lines
from eva00.ops.status import Snapshot, alert_groups, render

REFUSED = "refused (403: GET daily_log_header:list answered 403)"


def _refused(kind: str, project: int | None, reason: str = REFUSED) -> RunError:
    return RunError(kind, project, reason, f"{kind} in project {project or '-'} {reason}")


def test_many_identical_reasons_become_one_line_with_the_project_count_and_three_examples() -> None:
    # 450 refused date windows over five projects, and one other reason
    errors = [_refused("daily_log_header", 10001 + i % 5) for i in range(450)]
    errors.append(_refused("rfi", 10002, "refused (403: GET rfi:list answered 403)"))
    groups = aggregate(errors)
    assert [(g.kind, g.projects, g.jobs, g.examples) for g in groups] == [
        ("daily_log_header", 5, 450, (10001, 10002, 10003)), ("rfi", 1, 1, (10002,))]
    assert groups[0].line() == (f"daily_log_header: {REFUSED} in 5 projects"
                                " (e.g. 10001, 10002, 10003), 450 jobs")
    assert groups[1].line() == "rfi: refused (403: GET rfi:list answered 403) in 1 project (10002)"
    assert lines([g.to_dict() for g in groups]) == [g.line() for g in groups]


def test_a_company_level_reason_says_company_wide_and_a_kind_keeps_its_reasons_apart() -> None:
    disagreeing = "listing incomplete (counts kept disagreeing)"
    groups = aggregate([_refused("vendor", None, "refused (403: GET vendor:list answered 403)"),
                        _refused("rfi", 7, disagreeing), _refused("rfi", 7)])
    assert sorted(g.line() for g in groups) == [
        f"rfi: {disagreeing} in 1 project (7)", f"rfi: {REFUSED} in 1 project (7)",
        "vendor: refused (403: GET vendor:list answered 403) company-wide"]


def status(**changes: Any) -> dict[str, Any]:
    base = {"run_id": "fs-1", "status": "running", "current_phase": 2, "percent": 43.0, "items": 1234,
            "pages": 30, "requests": 120, "floor": 110, "requests_over_floor": 1.091, "rate_per_s": 2.5,
            "files": 40, "files_done": 3, "files_failed": 0, "files_pending": 37,
            "bytes": 31_457_280, "bytes_done": 1_258_291, "eta_s": 42.0, "elapsed_s": 70.0,
            "errors": 0, "file_requests": 0, "file_floor": 0, "api_requests_over_floor": None,
            "reasons": [], "unavailable": [], "error_list": [], "kinds": []}
    return {**base, **changes}


def test_a_progress_line_says_phase_percent_records_requests_over_floor_files_bytes_and_eta() -> None:
    line = progress_line(progress_record(status(), at_s=0.0))
    for part in ("full sync fs-1 running", "phase 2 active data 43.0%", "records 1234",
                 "requests 120 / floor 110", "files 3/40", "1.2 MB / 30.0 MB", "ETA 0:42"):
        assert part in line, line
    ended = progress_line(progress_record(status(status="complete", current_phase=None), at_s=0.0))
    assert "complete | downloads" in ended, "records in, files still coming"


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_lines_come_at_most_once_per_interval_and_json_lines_carry_the_stable_keys() -> None:
    out, clock = io.StringIO(), Clock()
    report = LineReport(out, 10.0, as_json=True, clock=clock, monotonic=clock)
    for step_s in (0.0, 4.0, 4.0, 4.0, 9.0, 1.0):  # at 1000, 1004, 1008, 1012, 1021, 1022
        clock.now_s += step_s
        report.show(status())
    report.summary(status(status="incomplete", current_phase=None), ["rfi: refused in 1 project (7)"], 1)
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [r["at"] for r in records if r["event"] == "progress"] == [1000.0, 1012.0, 1022.0]
    assert all(tuple(r) == PROGRESS_KEYS for r in records[:-1])
    assert tuple(records[-1]) == PROGRESS_KEYS + SUMMARY_KEYS
    assert records[-1]["event"] == "summary" and records[-1]["exit_code"] == 1
    assert records[-1]["incomplete"] == ["rfi: refused in 1 project (7)"]


def test_plain_lines_end_with_the_summary_table_and_the_aggregated_reasons() -> None:
    out = io.StringIO()
    report = LineReport(out, 0.5, as_json=False)
    report.show(status())
    report.summary(status(status="incomplete", current_phase=None, files_pending=0),
                   ["rfi: refused (403) in 1 project (7)"], 1)
    text = out.getvalue()
    assert text.count("full sync fs-1") == 3  # two lines and the table's title
    assert "requests / floor" in text
    assert "incomplete: 1 reason\n  rfi: refused (403) in 1 project (7)\n" in text


def test_a_complete_runs_summary_tables_the_tools_switched_off_once_per_kind_and_reason() -> None:
    reason = "unavailable (403: The Daily Log tool is not enabled for this project)"
    windows = [_refused("notes_log", project, reason) for project in (4, 5, 6, 7) for _window in range(12)]
    groups = [g.to_dict() for g in aggregate(windows)]
    out = io.StringIO()
    LineReport(out, 0.5, as_json=False).summary(
        status(status="complete", current_phase=None, files_pending=0, unavailable=groups), [], 0)
    text = out.getvalue()
    assert "unavailable (a tool switched off" in text and "incomplete" not in text
    row = next(line for line in text.splitlines() if "notes_log" in line)
    assert "The Daily Log tool" in row and " 4 " in row and "4, 5, 6" in row
    assert text.count("notes_log") == 1  # 48 refused windows, one row


def _alert(key: str, severity: str = "warning") -> dict[str, Any]:
    return {"severity": severity, "alert_key": key, "status": "open", "message": f"about {key}"}


@pytest.mark.parametrize("keys, rows", [
    (["project-forbidden:1", "project-forbidden:2", "project-forbidden:3", "project-forbidden:4"],
     [("project-forbidden:*", 4, "in 4 projects (e.g. 1, 2, 3); first: about project-forbidden:1")]),
    (["project-forbidden:1"], [("project-forbidden:1", 1, "about project-forbidden:1")]),
    (["sync-late:rfi:1", "sync-late:rfi:2", "sync-late:drawing:1", "disk-space-low"],
     [("sync-late:rfi:*", 2, "in 2 projects (1, 2); first: about sync-late:rfi:1"),
      ("sync-late:drawing:1", 1, "about sync-late:drawing:1"),
      ("disk-space-low", 1, "about disk-space-low")]),
])
def test_open_alerts_of_one_family_are_one_row_with_their_count_and_examples(
        keys: list[str], rows: list[tuple[str, int, str]]) -> None:
    assert [(g["alert_key"], g["count"], g["message"]) for g in alert_groups(
        [_alert(k) for k in keys])] == rows


def test_status_prints_an_incomplete_runs_reasons_aggregated() -> None:
    from datetime import UTC, datetime

    snap = Snapshot(at=datetime(2030, 1, 1, tzinfo=UTC))
    groups = aggregate([_refused("daily_log_header", 10001) for _ in range(40)])
    snap.full_sync = [{"run_id": "fs-1", "status": "incomplete", "reasons": [g.to_dict() for g in groups]}]
    snap.alerts = [_alert(f"project-forbidden:{p}") for p in (10001, 10002)]
    out = io.StringIO()
    render(snap, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert f"daily_log_header: {REFUSED} in 1 project (10001), 40 jobs" in text
    assert text.count(REFUSED) == 1
    assert "project-forbidden:*" in text and "in 2 projects (10001, 10002)" in text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stdout, argv, chosen", [
    (Terminal(), [], "LiveReport"), (io.StringIO(), [], "LineReport"),
    (Terminal(), ["--json"], "LineReport"),
])
def test_bars_are_drawn_on_a_terminal_and_lines_anywhere_else_or_with_json(
        monkeypatch: pytest.MonkeyPatch, stdout: io.StringIO, argv: list[str], chosen: str) -> None:
    from eva00.cli import full_sync

    monkeypatch.setattr("sys.stdout", stdout)
    report = full_sync._report(full_sync.build_parser().parse_args(["--wait", *argv]))
    assert type(report).__name__ == chosen


def test_on_a_terminal_the_bars_stay_and_the_summary_follows_them() -> None:
    from eva00.fullsync.progress import LiveReport

    out = Terminal()
    kind = {"phase": 2, "kind": "rfi", "items": 5, "requests": 3, "floor": 3, "files_done": 1, "files": 2,
            "bytes_done": 0, "bytes": 10, "state": "running", "errors": 0, "polls": 3, "polls_finished": 1}
    with LiveReport(Console(file=out, force_terminal=True, width=160, color_system=None)) as report:
        report.show(status(kinds=[kind]))
        report.summary(status(kinds=[kind]), ["rfi: refused (403) in 1 project (7)"], 1)
    text = out.getvalue()
    assert text.index("2 active data  rfi") < text.index("requests / floor") < text.index("incomplete: 1")
