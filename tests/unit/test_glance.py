"""Status at a glance: the freshness rows folded per family and per (family, project) cell."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from eva00.kinds import FAMILY_KINDS
from eva00.ops.freshness import Freshness, freshness_level
from eva00.ops.glance import heat_cells, select_pairs, summarise, worst_text
from eva00.ops.status import Snapshot, render

AT = datetime(2030, 1, 1, tzinfo=UTC)


def row(kind: str, family: str, project: int | None, age_s: float | None, interval_s: int = 300) -> Freshness:
    last = None if age_s is None else AT - timedelta(seconds=age_s)
    return Freshness(kind, family, project, last, interval_s, age_s, freshness_level(age_s, interval_s))


ROWS = [row("rfi", "rfis", 7, 30), row("rfi", "rfis", 8, 700), row("rfi", "rfis", 9, 1600),
        row("rfi", "rfis", 10, 1400), row("drawing", "drawings", 7, 100),
        row("drawing_area", "drawings", 7, 650), row("drawing", "drawings", 8, None),
        row("project", "projects", None, 10)]


def test_summary_counts_ok_late_and_critical_pairs_per_family() -> None:
    rows = {s.family: s for s in summarise(ROWS)}
    assert (rows["rfis"].ok, rows["rfis"].late, rows["rfis"].critical, rows["rfis"].never) == (1, 2, 1, 0)
    assert (rows["drawings"].ok, rows["drawings"].late, rows["drawings"].never) == (1, 1, 1)
    assert rows["projects"].pairs == 1 and rows["projects"].ok == 1


def test_summary_has_one_row_per_family_even_without_polls() -> None:
    assert [s.family for s in summarise([])] == list(FAMILY_KINDS)


def test_the_worst_pair_is_the_most_intervals_behind_and_late_beats_never_polled() -> None:
    rows = {s.family: s for s in summarise(ROWS)}
    worst = rows["rfis"].worst
    assert worst is not None and (worst.project_id, worst.level) == (9, "stale")
    assert worst_text(worst) == "rfi @ 9: 5.3x (27 min)"
    drawings = rows["drawings"].worst
    assert drawings is not None and (drawings.kind, drawings.level) == ("drawing_area", "late")


def test_thresholds_are_the_alerts_two_and_five_intervals() -> None:
    counts = summarise([row("rfi", "rfis", 1, 599), row("rfi", "rfis", 2, 600), row("rfi", "rfis", 3, 1499),
                        row("rfi", "rfis", 4, 1500)])
    rfis = next(s for s in counts if s.family == "rfis")
    assert (rfis.ok, rfis.late, rfis.critical) == (1, 2, 1)


def test_records_files_and_last_full_sync_come_from_the_family_counts() -> None:
    rows = {s.family: s for s in summarise(ROWS, {"rfis": {"records": 40, "files": 3, "files_downloaded": 2,
                                                           "last_full_sync_at": AT}})}
    assert (rows["rfis"].records, rows["rfis"].files, rows["rfis"].last_full_sync_at) == (40, 3, AT)


def test_a_heat_cell_shows_the_worst_kind_of_its_family_in_its_project() -> None:
    cells = {(c["family"], c["project_id"]): c for c in heat_cells(ROWS)}
    assert len(cells) == 7
    assert (cells[("drawings", 7)]["kind"], cells[("drawings", 7)]["level"]) == ("drawing_area", "late")
    assert cells[("drawings", 8)]["level"] == "never" and cells[("drawings", 8)]["intervals_ago"] is None
    assert cells[("projects", None)]["level"] == "ok"
    assert next(c["family"] for c in heat_cells(ROWS)) == "projects", "families in FAMILY_KINDS order"


def test_details_select_a_family_a_project_or_the_company_level() -> None:
    assert {f.project_id for f in select_pairs(ROWS, family="rfis")} == {7, 8, 9, 10}
    assert {f.kind for f in select_pairs(ROWS, project_id=7)} == {"rfi", "drawing", "drawing_area"}
    assert [f.kind for f in select_pairs(ROWS, project_id=0)] == ["project"]
    assert len(select_pairs(ROWS)) == len(ROWS)


def test_the_terminal_starts_with_the_family_rows_and_lists_pairs_only_on_request() -> None:
    snap = Snapshot(at=AT, freshness=ROWS)
    out = io.StringIO()
    render(snap, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert text.index("Freshness by family") < text.index("Open alerts")
    assert "rfi @ 9: 5.3x" in text and "per kind and project" not in text
    out = io.StringIO()
    render(snap, Console(file=out, width=200, color_system=None), select_pairs(ROWS, family="rfis"))
    assert "Freshness per kind and project (4 pairs)" in out.getvalue()
