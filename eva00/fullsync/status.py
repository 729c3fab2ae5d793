"""A full-sync run's progress as plain data (the JSON of `eva00 full-sync --status --json`).

Everything comes from PostgreSQL: the run's job ledger (requests spent, shows, Totals seen), the
differ's committed pages (items, finished polls) and record_files (files and bytes). The floor is
the fewest requests that carry the run's data: per poll the pages its Total needs at the
endpoint's largest page (at least one; a re-run after a count mismatch is not in the floor), plus
the show calls for list entries that were new or changed, plus one listing of the parents a kind
must list first (spec-section divisions: the spec requires one per revision listing).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import psycopg

from eva00.config import Settings
from eva00.fullsync import ledger
from eva00.fullsync.reasons import aggregate
from eva00.fullsync.run import (
    RATE_WINDOW_S,
    FullSync,
    Run,
    floor_requests,
    run_error_items,
    run_unavailable_items,
)
from eva00.kinds import COMPANY_LEVEL_KINDS
from eva00.procore.endpoints import ENDPOINTS
from eva00.procore.http import netloc_of
from eva00.replica import files


def api_hosts(settings: Settings) -> frozenset[str]:
    """Hosts whose file links are API requests (the first hop of a download counts against the
    rate limit); links elsewhere go straight to storage and cost no API budget."""
    hosts = {netloc_of(settings.api_base), netloc_of(settings.login_base)}
    api_host = netloc_of(settings.api_base).rsplit(":", 1)[0]
    if settings.loopback_urls_allowed and api_host in ("127.0.0.1", "localhost"):
        # The simulator's file host: the API's loopback name on a port of its own (a LIKE pattern),
        # as the URL policy lets it carry the token; its hop is rate limited like the API's.
        hosts.add(f"{api_host}:%")
    return frozenset(hosts)


def run_status(sync: FullSync, run: Run, now_s: float | None = None) -> dict[str, Any]:
    with sync.pool.connection() as conn:
        return status_of(conn, run, now_s, api_hosts(sync.settings))


def status_of(conn: psycopg.Connection[Any], run: Run, now_s: float | None = None,
              hosts: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``requests`` and ``floor`` count listings and shows (the run's own polls);
    ``file_requests`` and ``file_floor`` the downloads' first hops through ``hosts``; ``percent``
    the requests done of those done and still estimated; ``error_list`` every error as it was
    recorded, ``reasons`` the same aggregated per (kind, reason) (eva00/fullsync/reasons.py);
    ``unavailable`` what Procore refused as a project's tool switched off, aggregated alike (not
    errors: a run whose only gaps they are is complete)."""
    now_s = time.time() if now_s is None else now_s
    kinds = _kinds(conn, run, hosts)
    errors = run_error_items(conn, run.run_id)
    recent = conn.execute(
        "SELECT coalesce(sum(requests), 0) FROM fullsync_jobs WHERE run_id = %s"
        " AND done_at > now() - make_interval(secs => %s)", (run.run_id, RATE_WINDOW_S)).fetchone()
    projects = conn.execute("SELECT count(*) FROM projects WHERE kind = 'project'"
                            " AND NOT is_deleted").fetchone()
    end_s = run.finished_at or now_s
    elapsed_s = max(end_s - run.started_at, 0.0)
    window_s = min(float(RATE_WINDOW_S), max(elapsed_s, 1.0))
    rate = (float(recent[0]) if recent else 0.0) / window_s
    project_count = len(run.project_ids) if run.project_ids else int(projects[0] if projects else 0)
    remaining = sum(k["remaining"] for k in kinds.values()) + _future_units(run, kinds, project_count)
    totals = {name: sum(k[name] for k in kinds.values())
              for name in ("requests", "floor", "items", "pages", "files", "files_done", "files_pending",
                           "files_failed", "file_requests", "file_floor", "bytes",
                           "bytes_done", "errors", "shows")}
    return {
        "run_id": run.run_id, "status": run.status, "reason": run.reason, "phases": run.phases,
        "current_phase": _current_phase(run, kinds), "started_at": run.started_at,
        "finished_at": run.finished_at, "elapsed_s": round(elapsed_s, 1),
        **totals,
        "requests_over_floor": round(totals["requests"] / totals["floor"], 3) if totals["floor"] else None,
        "api_requests_over_floor": _ratio(totals["requests"] + totals["file_requests"],
                                          totals["floor"] + totals["file_floor"]),
        "rate_per_s": round(rate, 3),
        "eta_s": None if run.status != "running" or rate <= 0 else round(remaining / rate, 1),
        "remaining_requests_estimate": remaining,
        "percent": _percent(run, totals["requests"], remaining),
        "error_list": [error.sentence for error in errors],
        "reasons": [group.to_dict() for group in aggregate(errors)],
        "unavailable": [group.to_dict() for group in aggregate(run_unavailable_items(conn, run.run_id))],
        "kinds": [kinds[k] for p in run.phases for k in ledger.PHASES[p]],
    }


def _kinds(conn: psycopg.Connection[Any], run: Run, hosts: frozenset[str]) -> dict[str, dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = {}
    for phase in run.phases:
        for kind in ledger.PHASES[phase]:
            kinds[kind] = {"phase": phase, "kind": kind, "state": "waiting", "jobs": 0, "queued": 0,
                           "polls": 0, "polls_finished": 0, "pages": 0, "items": 0, "requests": 0,
                           "shows": 0, "floor": 0, "remaining": 0, "errors": 0, "files": 0,
                           "files_done": 0, "files_pending": 0, "files_failed": 0,
                           "file_requests": 0, "file_floor": 0,
                           "bytes": 0, "bytes_done": 0}
    for kind, jobs, queued, polls, requests, shows, refused in conn.execute(
            "SELECT kind, count(*), count(*) FILTER (WHERE state = 'queued'),"
            " count(DISTINCT poll_id) FILTER (WHERE poll_id <> ''), sum(requests), sum(shows),"
            " count(*) FILTER (WHERE outcome = 'refused') FROM fullsync_jobs WHERE run_id = %s"
            " GROUP BY kind", (run.run_id,)):
        if kind in kinds:
            kinds[kind].update(jobs=jobs, queued=queued, polls=polls, requests=int(requests or 0),
                               shows=int(shows or 0), errors=refused, remaining=queued)
    _floors(conn, run, kinds)
    for kind, pages, items, finished in conn.execute(
            "SELECT kind, count(*), sum(items), count(*) FILTER (WHERE is_last AND finished_at IS NOT NULL)"
            " FROM poll_pages WHERE run_id = %s GROUP BY kind", (run.run_id,)):
        if kind in kinds:
            kinds[kind].update(pages=pages, items=int(items or 0), polls_finished=finished)
    _files(conn, run, kinds, hosts)
    for k in kinds.values():
        if k["jobs"]:
            k["state"] = "done" if k["queued"] == 0 and k["polls_finished"] >= k["polls"] else "running"
    return kinds


# Kinds whose jobs first list their parents from the API (one request a job that fans out).
PARENT_LISTED_KINDS = [kind for kind, spec in ENDPOINTS.items() if spec.parent_listing is not None]


def _floors(conn: psycopg.Connection[Any], run: Run, kinds: dict[str, dict[str, Any]]) -> None:
    for kind, total, listed, shows_needed, rerun, paged, finished in conn.execute(
            "SELECT j.kind, max(j.total), sum(j.listed), sum(j.shows_needed),"
            " min(coalesce((j.job->>'rerun')::int, 0)), count(*) FILTER (WHERE j.outcome = 'paged'),"
            " bool_or(EXISTS (SELECT 1 FROM poll_pages p WHERE p.poll_id = j.poll_id AND p.is_last))"
            " FROM fullsync_jobs j WHERE j.run_id = %s AND j.poll_id <> '' AND j.state = 'done'"
            " AND j.outcome IS DISTINCT FROM 'unavailable'"  # a tool switched off carries no data
            " GROUP BY j.kind, j.poll_id", (run.run_id,)):
        if kind not in kinds:
            continue
        needed = floor_requests(kind, total, int(listed or 0))
        if rerun == 0:
            kinds[kind]["floor"] += needed + int(shows_needed or 0)
        if not finished:
            kinds[kind]["remaining"] += max(needed - paged, 0)
    for kind, listings in conn.execute(
            "SELECT kind, count(*) FROM fullsync_jobs WHERE run_id = %s AND poll_id = '' AND state = 'done'"
            " AND outcome IS DISTINCT FROM 'unavailable' AND kind = ANY(%s) GROUP BY kind",
            (run.run_id, PARENT_LISTED_KINDS)):
        if kind in kinds:
            kinds[kind]["floor"] += int(listings)


def _files(conn: psycopg.Connection[Any], run: Run, kinds: dict[str, dict[str, Any]],
           hosts: frozenset[str]) -> None:
    for kind, count, done, pending, api_links, api_attempts, size, size_done in files.progress_by_kind(
            conn, list(kinds), run.project_ids, hosts):
        kinds[kind].update(files=count, files_done=done, files_pending=pending, file_floor=api_links,
                           file_requests=int(api_attempts),
                           files_failed=count - done - pending, bytes=int(size or 0),
                           bytes_done=int(size_done or 0))


def _current_phase(run: Run, kinds: dict[str, dict[str, Any]]) -> int | None:
    if run.status != "running":
        return None
    started = [p for p in run.phases if any(k["jobs"] for k in kinds.values() if k["phase"] == p)]
    return max(started) if started else run.phases[0]


def _future_units(run: Run, kinds: dict[str, dict[str, Any]], projects: int) -> int:
    """At least one request per (kind, project) not enqueued yet."""
    per_kind: dict[str, int] = defaultdict(int)
    for kind, info in kinds.items():
        if info["jobs"] == 0:
            per_kind[kind] = 1 if kind in COMPANY_LEVEL_KINDS else max(projects, 1)
    return sum(per_kind.values()) if run.status == "running" else 0


def summary_rows(status: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per kind for the final table (items, requests, floor, files, errors)."""
    return [{"phase": k["phase"], "kind": k["kind"], "items": k["items"], "requests": k["requests"],
             "floor": k["floor"], "files": k["files"], "bytes": k["bytes"], "errors": k["errors"]}
            for k in status["kinds"]]


def _percent(run: Run, done: int, remaining: int) -> float:
    """Requests done of those done and still estimated; 100 only once the run has ended."""
    if run.status != "running":
        return 100.0
    return min(round(100.0 * done / (done + remaining), 1) if done + remaining else 0.0, 99.9)


def _ratio(used: int, floor: int) -> float | None:
    return round(used / floor, 3) if floor else None
