"""Status at a glance: the freshness rows (eva00/ops/status.py) folded into one row per family and
one heat-map cell per (family, project), plus the drill-down of one cell for the dashboard.

The folding is pure (``summarise``, ``heat_cells``, ``select_pairs``): it reuses each row's level,
so ok / late / critical mean what the monitor's alerts mean (2 and 5 poll intervals).
The readers only read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from eva00.kinds import FAMILY_KINDS, KIND_TABLE
from eva00.ops.freshness import Freshness
from eva00.replica.cursors import read_cursor
from eva00.replica.polls import recent_polls
from eva00.replica.synclog import recent_errors

# How bad a level is, worst last: a pair never polled is worse than a fresh one, better than a late one.
_RANK = {"ok": 0, "never": 1, "late": 2, "stale": 3}


@dataclass(frozen=True)
class Worst:
    kind: str
    project_id: int | None
    level: str
    intervals_ago: float | None
    age_s: float | None


@dataclass
class FamilySummary:
    family: str
    ok: int = 0
    late: int = 0
    critical: int = 0
    never: int = 0
    worst: Worst | None = None
    records: int = 0
    files: int = 0
    files_downloaded: int = 0
    last_full_sync_at: datetime | None = None

    @property
    def pairs(self) -> int:
        return self.ok + self.late + self.critical + self.never

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pairs": self.pairs}


def badness(f: Freshness) -> tuple[int, float]:
    return _RANK[f.level], f.intervals_ago or 0.0


def _count(summary: FamilySummary, level: str) -> None:
    name = {"stale": "critical"}.get(level, level)
    setattr(summary, name, getattr(summary, name) + 1)


def summarise(freshness: Iterable[Freshness], counts: Mapping[str, Mapping[str, Any]] | None = None
              ) -> list[FamilySummary]:
    """One row per family (FAMILY_KINDS order, every family even without rows): how many
    (project, kind) pairs are ok / late / critical / never polled, the worst pair, and the
    family's records, files and last full sync from ``counts`` (read_family_counts)."""
    rows = {family: FamilySummary(family) for family in FAMILY_KINDS}
    worst: dict[str, Freshness] = {}
    for f in freshness:
        summary = rows.setdefault(f.family, FamilySummary(f.family))
        _count(summary, f.level)
        if f.family not in worst or badness(f) > badness(worst[f.family]):
            worst[f.family] = f
    for family, f in worst.items():
        rows[family].worst = Worst(f.kind, f.project_id, f.level, f.intervals_ago, f.age_s)
    for family, extra in (counts or {}).items():
        if family in rows:
            for name, value in extra.items():
                setattr(rows[family], name, value)
    return list(rows.values())


def heat_cells(freshness: Iterable[Freshness]) -> list[dict[str, Any]]:
    """One cell per (family, project) (project None: company level), the worst kind of that
    family in that project: its level, intervals ago and kind; ordered by family, then project."""
    cells: dict[tuple[str, int], Freshness] = {}
    for f in freshness:
        key = (f.family, f.project_id or 0)
        if key not in cells or badness(f) > badness(cells[key]):
            cells[key] = f
    order = {family: i for i, family in enumerate(FAMILY_KINDS)}
    return [{"family": family, "project_id": project or None, "kind": f.kind, "level": f.level,
             "intervals_ago": f.intervals_ago}
            for (family, project), f in sorted(cells.items(), key=lambda c: (order.get(c[0][0], 99),
                                                                              c[0][1]))]


def select_pairs(freshness: Iterable[Freshness], family: str | None = None,
                 project_id: int | None = None) -> list[Freshness]:
    """The detail rows `--family` / `--project` ask for (project 0: the company-level kinds)."""
    return [f for f in freshness if (family is None or f.family == family)
            and (project_id is None or (f.project_id or 0) == project_id)]


# --- PostgreSQL ---

def _family_tables() -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    for family, kinds in FAMILY_KINDS.items():
        tables[family] = list(dict.fromkeys(KIND_TABLE[k] for k in kinds))
    return tables


def read_family_counts(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Per family: records (rows of its tables), files (linked, downloaded) and the last
    complete full-sync poll of any of its kinds."""
    tables = _family_tables()
    counted = {t: 0 for ts in tables.values() for t in ts}
    union = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in counted)
    counted.update({str(t): int(n) for t, n in conn.execute(union)})
    per_kind_files = {str(k): (int(n), int(d)) for k, n, d in conn.execute(
        "SELECT kind, count(*), count(*) FILTER (WHERE status = 'downloaded') FROM record_files GROUP BY 1")}
    full = {str(k): at for k, at in conn.execute(
        "SELECT kind, max(finished_at) FROM poll_pages WHERE run_id <> '' AND is_last AND complete"
        " GROUP BY 1")}
    result = {}
    for family, kinds in FAMILY_KINDS.items():
        fulls = [full[k] for k in kinds if full.get(k)]
        result[family] = {
            "records": sum(counted[t] for t in tables[family]),
            "files": sum(per_kind_files.get(k, (0, 0))[0] for k in kinds),
            "files_downloaded": sum(per_kind_files.get(k, (0, 0))[1] for k in kinds),
            "last_full_sync_at": max(fulls) if fulls else None}
    return result


def read_pair(conn: psycopg.Connection[Any], family: str, project_id: int | None,
              freshness: Sequence[Freshness], now: datetime) -> dict[str, Any]:
    """One heat-map cell's detail: per kind its freshness, cursor and next planned poll (the last
    success plus the family's interval: the scheduler ticks a family once per interval), then
    the cell's recent polls and recent errors."""
    kinds = FAMILY_KINDS[family]
    rows = {f.kind: f for f in select_pairs(freshness, family, project_id or 0)}
    per_kind = []
    for kind in kinds:
        f = rows.get(kind)
        if f is None:
            continue
        planned = None if f.last_success_at is None else f.last_success_at + timedelta(seconds=f.interval_s)
        per_kind.append({"kind": kind, "level": f.level, "intervals_ago": f.intervals_ago,
                         "last_success_at": f.last_success_at, "interval_s": f.interval_s,
                         "cursor_at": _cursor(conn, kind, project_id or None),
                         "next_poll_at": planned, "overdue": planned is not None and planned <= now})
    return {"family": family, "project_id": project_id or None, "at": now, "kinds": per_kind,
            "polls": recent_polls(conn, kinds, project_id or None),
            "errors": recent_errors(conn, kinds, project_id or None)}



def _cursor(conn: psycopg.Connection[Any], kind: str, project_id: int | None) -> datetime | None:
    try:
        return read_cursor(conn, kind, project_id)
    except ValueError:  # a row whose scope does not fit its kind: shown, not read
        return None


# --- terminal ---

def ago_text(age_s: float | None) -> str:
    """``42 s``, ``17 min``, ``3.5 h``, ``2.0 d``."""
    if age_s is None:
        return "never"
    if age_s < 120:
        return f"{age_s:.0f} s"
    if age_s < 7200:
        return f"{age_s / 60:.0f} min"
    return f"{age_s / 3600:.1f} h" if age_s < 172800 else f"{age_s / 86400:.1f} d"


def worst_text(worst: Worst | None) -> str:
    if worst is None:
        return "-"
    where = f"{worst.kind} @ {worst.project_id or 'company'}"
    if worst.intervals_ago is None:
        return f"{where}: never polled"
    return f"{where}: {worst.intervals_ago:.1f}x ({ago_text(worst.age_s)})"


def render_summary(console: Any, at: datetime, rows: Sequence[FamilySummary]) -> None:
    from rich.table import Table

    # One screen: a row per family, cells that do not wrap (the worst pair is the widest).
    table = Table(title=f"Freshness by family at {at:%Y-%m-%d %H:%M:%S %Z}",
                  caption="(kind, project) pairs; late: 2+ intervals since the last poll, critical: 5+;"
                          " worst: intervals since its last poll (and time)")
    for col in ("family", "ok", "late", "critical", "never", "worst", "records", "files",
                "last full sync"):
        numeric = col in ("ok", "late", "critical", "never", "records")
        table.add_column(col, justify="right" if numeric else "left", no_wrap=True)
    for r in rows:
        style = "bold red" if r.critical else "yellow" if r.late else "green" if r.ok else "dim"
        table.add_row(
            f"[{style}]{r.family}[/]", str(r.ok), _styled(r.late, "yellow"), _styled(r.critical, "bold red"),
            str(r.never), worst_text(r.worst), str(r.records), f"{r.files_downloaded}/{r.files}",
            f"{r.last_full_sync_at:%Y-%m-%d %H:%M}" if r.last_full_sync_at else "never")
    console.print(table)


def _styled(count: int, style: str) -> str:
    return f"[{style}]{count}[/]" if count else "0"


def render_freshness(console: Any, rows: Sequence[Freshness], styles: Mapping[str, str]) -> None:
    from rich.table import Table

    table = Table(title=f"Freshness per kind and project ({len(rows)} pairs)")
    for col in ("family", "kind", "project", "last success", "intervals ago", "level"):
        table.add_column(col)
    for f in rows:
        ago = "-" if f.intervals_ago is None else f"{f.intervals_ago:.1f}"
        last = f.last_success_at.isoformat(timespec="seconds") if f.last_success_at else "never"
        table.add_row(f.family, f.kind, str(f.project_id or "company"), last, ago,
                      f"[{styles[f.level]}]{f.level}[/]")
    console.print(table)
