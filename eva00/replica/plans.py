"""The poll plan per (kind, project): how often the scheduler polls each pair, and when next.

Everyday polling costs a request per kind per poll, so polling every pair at its family's interval
holds for about 43 projects inside the scheduled budget (60 a minute). A company with 200 projects
is mostly quiet, so the plan follows the change each pair shows:

- a pair whose polls found a change within ``active_window_s`` is polled at its family's
  interval (the seed's);
- a quiet pair's interval doubles with each poll that found nothing, up to ``max_staleness_s``
  (at most ``ACTIVE_PROJECT_CAP`` times its family's interval while other kinds of its project
  are active);
- an inactive project's kinds are polled once per ``max_staleness_s``;
- a change found in a quiet project wakes the whole project: each of its kinds is polled within
  its family's interval.

Changes are counted from the everyday polls (and the webhooks' item fetches) the differ
committed: ``poll_pages.changed``. A full sync's pages are the initial load, not a sign of life,
so they never make a pair active. The scheduler spends its budget on the due pairs in order:
active ones first, then the most overdue (eva00/stages/scheduler.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from eva00.procore.endpoints import ENDPOINTS

# While another kind of its project changes, a quiet kind waits at most this many intervals.
ACTIVE_PROJECT_CAP = 8
QUIET_GROWTH = 2.0


@dataclass(frozen=True)
class PlanRules:
    max_staleness_s: float = 86400.0
    active_window_s: float = 86400.0

    def interval_s(self, seed_s: int, *, quiet_polls: int, pair_active: bool, project_active: bool,
                   project_open: bool = True) -> int:
        """The planned interval of one pair, never shorter than its family's."""
        if not project_open:
            return int(max(seed_s, self.max_staleness_s))
        if pair_active:
            return seed_s
        grown = seed_s * QUIET_GROWTH ** min(quiet_polls, 40)
        cap = seed_s * ACTIVE_PROJECT_CAP if project_active else self.max_staleness_s
        return int(max(seed_s, min(grown, cap, self.max_staleness_s)))


@dataclass(frozen=True)
class FinishedPoll:
    """A poll the differ finished: what it cost and whether it found anything."""

    kind: str
    project_id: int  # 0: company-level
    finished_at: datetime
    pages: int
    changed: int
    full_sync: bool


@dataclass(frozen=True)
class DuePair:
    kind: str
    project_id: int
    seed_s: int
    interval_s: int
    cost: int
    overdue_s: float


def count_changes(conn: psycopg.Connection[Any], poll_id: str, page: int, changed: int) -> None:
    """The records one committed page inserted, updated, restored or deleted (differ)."""
    if changed:
        conn.execute("UPDATE poll_pages SET changed = %s WHERE poll_id = %s AND page = %s",
                     (changed, poll_id, page))


def finished_polls_since(conn: psycopg.Connection[Any], since: datetime) -> list[FinishedPoll]:
    """Complete polls whose last page committed at or after ``since`` (the committed_at index;
    the caller re-reads an overlap and ``apply_polls`` skips what it applied already)."""
    rows = conn.execute(
        "SELECT p.kind, coalesce(p.project_id, 0), p.finished_at, coalesce(p.pages_total, 1),"
        " (SELECT coalesce(sum(q.changed), 0) FROM poll_pages q WHERE q.poll_id = p.poll_id),"
        " p.run_id <> ''"
        " FROM poll_pages p LEFT JOIN poll_plans pl ON pl.kind = p.kind"
        " AND pl.project_id = coalesce(p.project_id, 0)"
        " WHERE p.committed_at >= %s AND p.is_last AND p.complete AND p.finished_at IS NOT NULL"
        " AND (pl.last_finished_at IS NULL OR p.finished_at > pl.last_finished_at)"
        " ORDER BY p.finished_at", (since,)).fetchall()
    return [FinishedPoll(str(k), int(p), at, int(pages), int(changed), bool(full))
            for k, p, at, pages, changed, full in rows]


def ensure_plans(conn: psycopg.Connection[Any], pairs: Iterable[tuple[str, int]],
                 seeds_s: Mapping[str, int], now: datetime) -> int:
    """A plan for every pair that has none, due now; a changed family interval is taken over.
    Returns how many plans were created."""
    rows = [(kind, project_id, seeds_s[kind]) for kind, project_id in pairs]
    if not rows:
        return 0
    created = 0
    with conn.cursor() as cur:
        for kind, project_id, seed_s in rows:
            cur.execute(
                "INSERT INTO poll_plans (kind, project_id, seed_s, interval_s, next_poll_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (kind, project_id) DO UPDATE"
                " SET seed_s = EXCLUDED.seed_s, interval_s = greatest(poll_plans.interval_s, EXCLUDED.seed_s)"
                " WHERE poll_plans.seed_s <> EXCLUDED.seed_s RETURNING (xmax = 0)",
                (kind, project_id, seed_s, seed_s, now))
            row = cur.fetchone()
            created += bool(row and row[0])
    return created


def apply_polls(conn: psycopg.Connection[Any], rules: PlanRules, polls: Sequence[FinishedPoll],
                closed_projects: frozenset[int], now: datetime) -> list[int]:
    """Plan each pair's next poll from the polls it finished; returns the projects woken (a
    change found where nothing had changed within the active window)."""
    window = timedelta(seconds=rules.active_window_s)
    woken: list[int] = []
    for poll in polls:
        row = conn.execute(
            "SELECT seed_s, quiet_polls, last_change_at, last_finished_at, due_at FROM poll_plans"
            " WHERE kind = %s AND project_id = %s FOR UPDATE", (poll.kind, poll.project_id)).fetchone()
        if row is None:
            continue  # a kind no longer planned (ensure_plans creates every live pair's)
        seed_s, quiet_polls, last_change_at, last_finished_at, due_at = row
        if last_finished_at is not None and poll.finished_at <= last_finished_at:
            continue  # applied by an earlier look
        project_last = _project_last_change(conn, poll.project_id)
        if poll.changed and not poll.full_sync:
            if poll.project_id and poll.project_id not in closed_projects and (
                    project_last is None or project_last < now - window):
                woken.append(poll.project_id)
            quiet_polls, last_change_at = 0, poll.finished_at
            project_last = max(project_last or poll.finished_at, poll.finished_at)
        elif not poll.full_sync:
            quiet_polls += 1
        pair_active = last_change_at is not None and last_change_at >= now - window
        project_active = project_last is not None and project_last >= now - window
        interval_s = rules.interval_s(int(seed_s), quiet_polls=quiet_polls, pair_active=pair_active,
                                      project_active=project_active,
                                      project_open=poll.project_id not in closed_projects)
        conn.execute(
            "UPDATE poll_plans SET quiet_polls = %s, last_change_at = %s, last_finished_at = %s,"
            " interval_s = %s, next_poll_at = %s, cost = %s WHERE kind = %s AND project_id = %s",
            (quiet_polls, last_change_at, poll.finished_at, interval_s,
             next_poll_at(poll.finished_at, due_at, interval_s), poll_cost(poll), poll.kind,
             poll.project_id))
    for project_id in woken:
        wake_project(conn, project_id, now)
    return woken


def next_poll_at(finished_at: datetime, due_at: datetime | None, interval_s: int) -> datetime:
    """When the pair is due again, so that a change made just after this poll's window is stored
    within about one interval: the poll's lag (due -> finished: queueing, the limiter, fetching)
    is taken off twice, once for this poll's window, once for the next poll's own lag; at most a
    quarter interval each, so an outage does not make the plan poll in a rush."""
    lag_s = 0.0 if due_at is None else min(max(0.0, (finished_at - due_at).total_seconds()),
                                           interval_s / 4)
    return finished_at + timedelta(seconds=interval_s - 2 * lag_s)


def poll_cost(poll: FinishedPoll) -> int:
    """Requests a poll of the pair takes: its pages, plus a show per changed record of a kind whose
    show adds content (RFIs, submittals)."""
    spec = ENDPOINTS.get(poll.kind)
    return max(1, poll.pages) + (poll.changed if spec is not None and spec.show_adds_content else 0)


def _project_last_change(conn: psycopg.Connection[Any], project_id: int) -> datetime | None:
    row = conn.execute("SELECT max(last_change_at) FROM poll_plans WHERE project_id = %s",
                       (project_id,)).fetchone()
    return row[0] if row else None


def wake_project(conn: psycopg.Connection[Any], project_id: int, now: datetime) -> None:
    """Every kind of the project polled within its family's interval, then planned again."""
    conn.execute(
        "UPDATE poll_plans SET quiet_polls = 0, interval_s = least(interval_s, seed_s * %s),"
        " next_poll_at = least(next_poll_at, %s + seed_s * interval '1 second') WHERE project_id = %s",
        (ACTIVE_PROJECT_CAP, now, project_id))


def close_projects(conn: psycopg.Connection[Any], rules: PlanRules, project_ids: Sequence[int],
                   now: datetime) -> None:
    """Inactive projects: their kinds' next poll no sooner than the maximum staleness allows."""
    if project_ids:
        staleness_s = int(rules.max_staleness_s)
        conn.execute("UPDATE poll_plans SET interval_s = greatest(seed_s, %s) WHERE project_id = ANY(%s)"
                     " AND interval_s < %s", (staleness_s, list(project_ids), staleness_s))


def due_pairs(conn: psycopg.Connection[Any], now: datetime, project_ids: Sequence[int],
              limit: int) -> list[DuePair]:
    """Due pairs of live projects (and the company), active ones first, then the most overdue
    relative to their interval."""
    rows = conn.execute(
        "SELECT kind, project_id, seed_s, interval_s, cost, extract(epoch FROM %(now)s - next_poll_at)"
        " FROM poll_plans WHERE next_poll_at <= %(now)s AND (project_id = 0 OR project_id = ANY(%(p)s))"
        " ORDER BY interval_s = seed_s DESC, extract(epoch FROM %(now)s - next_poll_at) / interval_s DESC"
        " LIMIT %(limit)s", {"now": now, "p": list(project_ids), "limit": limit}).fetchall()
    return [DuePair(str(k), int(p), int(seed), int(interval), int(cost), float(overdue))
            for k, p, seed, interval, cost, overdue in rows]


def mark_planned(conn: psycopg.Connection[Any], pairs: Iterable[tuple[str, int]], now: datetime) -> None:
    """Enqueued pairs are not due again before their interval (their poll plans them anew when
    it finishes; a job lost with Redis is due again after one interval)."""
    with conn.cursor() as cur:
        for kind, project_id in pairs:
            cur.execute("UPDATE poll_plans SET due_at = least(next_poll_at, %s),"
                        " next_poll_at = %s + interval_s * interval '1 second'"
                        " WHERE kind = %s AND project_id = %s", (now, now, kind, project_id))


@dataclass(frozen=True)
class FamilyDemand:
    """Requests per minute a family's plans ask for, against what its pairs would at the seed's
    intervals."""

    family: str
    pairs: int
    planned_per_min: float
    seed_per_min: float
    active_pairs: int
    median_interval_s: float | None


def demand(conn: psycopg.Connection[Any], families: Mapping[str, Sequence[str]],
           project_ids: Sequence[int]) -> list[FamilyDemand]:
    rows = conn.execute(
        "SELECT kind, seed_s, interval_s, cost FROM poll_plans"
        " WHERE project_id = 0 OR project_id = ANY(%s)", (list(project_ids),)).fetchall()
    by_kind: dict[str, list[tuple[int, int, int]]] = {}
    for kind, seed_s, interval_s, cost in rows:
        by_kind.setdefault(str(kind), []).append((int(seed_s), int(interval_s), int(cost)))
    result = []
    for family, kinds in families.items():
        plans = [p for k in kinds for p in by_kind.get(k, [])]
        intervals = sorted(i for _s, i, _c in plans)
        result.append(FamilyDemand(
            family, len(plans), sum(60.0 * c / i for _s, i, c in plans),
            sum(60.0 * c / s for s, _i, c in plans), sum(1 for s, i, _c in plans if i == s),
            float(intervals[len(intervals) // 2]) if intervals else None))
    return result


def planned_intervals(conn: psycopg.Connection[Any]) -> dict[tuple[str, int], int]:
    """(kind, project id or 0) -> planned interval, for judging lateness against the plan."""
    return {(str(k), int(p)): int(i) for k, p, i in conn.execute(
        "SELECT kind, project_id, interval_s FROM poll_plans")}
