"""Freshness of each (kind, project) pair: when it last finished a complete poll, how many poll
intervals ago that is and the level it makes (ok, late, stale, never). The monitor's alerts, the
status snapshot and its per-family summary (eva00/ops/glance.py) all judge with these thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from eva00.kinds import family_of
from eva00.replica import plans

# How many poll intervals may pass before a kind is late (warning) or stale (critical).
LATE_INTERVALS = 2.0
STALE_INTERVALS = 5.0


def freshness_level(age_s: float | None, interval_s: float) -> str:
    """ok | late (>= 2 intervals) | stale (>= 5 intervals) | never (no complete poll yet)."""
    if age_s is None:
        return "never"
    if age_s >= STALE_INTERVALS * interval_s:
        return "stale"
    if age_s >= LATE_INTERVALS * interval_s:
        return "late"
    return "ok"


@dataclass(frozen=True)
class Freshness:
    kind: str
    family: str
    project_id: int | None
    last_success_at: datetime | None
    interval_s: int
    age_s: float | None
    level: str

    @property
    def intervals_ago(self) -> float | None:
        return None if self.age_s is None else self.age_s / self.interval_s


# --- PostgreSQL ---

_FRESHNESS_SQL = """
WITH done AS (
    SELECT kind, coalesce(project_id, 0) AS p, max(finished_at) AS at FROM poll_pages
     WHERE is_last AND complete AND finished_at IS NOT NULL GROUP BY 1, 2),
cur AS (SELECT kind, coalesce(project_id, 0) AS p, updated_at FROM sync_cursors)
SELECT coalesce(d.kind, c.kind), coalesce(d.p, c.p), greatest(d.at, c.updated_at)
  FROM done d FULL JOIN cur c ON d.kind = c.kind AND d.p = c.p ORDER BY 1, 2
"""


def read_freshness(conn: psycopg.Connection, intervals_s: dict[str, int], now: datetime) -> list[Freshness]:
    """Each pair judged against its planned interval (the adaptive schedule's; a quiet pair polled
    every few hours is not late), else its family's."""
    planned = plans.planned_intervals(conn)
    rows = []
    for kind, project, last in conn.execute(_FRESHNESS_SQL):
        try:
            family = family_of(kind)
        except ValueError:
            continue  # a kind this version no longer polls
        interval_s = planned.get((kind, project or 0)) or intervals_s.get(family, 3600)
        age_s = None if last is None else max(0.0, (now - last).total_seconds())
        rows.append(Freshness(kind, family, project or None, last, interval_s, age_s,
                              freshness_level(age_s, interval_s)))
    return rows
