"""The operator's status model: one snapshot of freshness, limiter, streams, files, alerts and disk,
shared by the dashboard (/api/status), `eva00 status` (rich tables) and `eva00 status --json`
(eva00/cli/status.py).

Reading only: a snapshot never writes, and each section degrades to an `error` text when its source
(Redis, PostgreSQL, supervisord) is unreachable, so the page still shows what it can.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.fullsync import reasons
from eva00.fullsync.run import load_runs
from eva00.fullsync.status import api_hosts, status_of
from eva00.kinds import FAMILY_KINDS
from eva00.ops import supervision
from eva00.ops.freshness import Freshness, read_freshness
from eva00.ops.glance import FamilySummary, heat_cells, read_family_counts, read_pair, summarise
from eva00.ops.streams_report import backlog_rows
from eva00.procore.keys import DEFAULT_KEYS, ProcoreKeys, as_text
from eva00.procore.limiter import CLASSES
from eva00.procore.metrics import Metrics
from eva00.replica import files, plans

US_PER_S = 1_000_000


@dataclass(frozen=True)
class LimiterView:
    bucket_tokens: float | None
    burst: int
    window_used: int
    window_max: int
    requests_last_min: dict[str, int]
    paused_for_s: float
    pause_reason: str | None
    circuit: str
    server: dict[str, str]
    oauth_halted: str | None


@dataclass
class Snapshot:
    at: datetime
    freshness: list[Freshness] = field(default_factory=list)
    errors_24h: dict[str, int] = field(default_factory=dict)
    limiter: LimiterView | None = None
    procore_calls: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[str, int] = field(default_factory=dict)
    streams: list[dict[str, Any]] = field(default_factory=list)
    downloads: dict[str, dict[str, int]] = field(default_factory=dict)
    full_sync: list[dict[str, Any]] = field(default_factory=list)
    # Per family: the adaptive schedule's planned intervals and requests against the budget.
    schedule: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: dict[str, Any] = field(default_factory=dict)
    disk: dict[str, Any] = field(default_factory=dict)
    processes: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    # Per family: records, files, files_downloaded, last_full_sync_at (glance.read_family_counts).
    family_counts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> list[FamilySummary]:
        return summarise(self.freshness, self.family_counts)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["freshness"] = [{**dataclasses.asdict(f), "intervals_ago": f.intervals_ago}
                             for f in self.freshness]
        data["summary"] = [s.to_dict() for s in self.summary()]
        data["heat"] = heat_cells(self.freshness)
        # the same aggregation the terminal shows: one row per alert family, one line per reason
        data["alert_groups"] = alert_groups(self.alerts)
        for run in data["full_sync"]:
            run["reason_lines"] = reasons.lines(run.get("reasons") or [])
        return data

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


# --- PostgreSQL sections ---

def read_errors_24h(conn: psycopg.Connection, now: datetime) -> dict[str, int]:
    since = now - timedelta(hours=24)
    row = conn.execute(
        "SELECT (SELECT count(*) FROM dead_letters WHERE at >= %(s)s),"
        " (SELECT count(*) FROM record_files WHERE status IN ('failed', 'expired')"
        "   AND updated_at >= %(s)s),"
        " (SELECT count(*) FROM sync_log WHERE at >= %(s)s"
        "   AND action IN ('poll_incomplete', 'fetch_refused', 'error')),"
        " (SELECT count(*) FROM sync_log WHERE at >= %(s)s AND action = 'conflict'),"
        " (SELECT count(*) FROM alerts WHERE opened_at >= %(s)s AND severity <> 'info')",
        {"s": since}).fetchone()
    assert row is not None
    names = ("dead_letters", "failed_downloads", "incomplete_polls", "conflicts", "alerts_opened")
    return dict(zip(names, (int(v) for v in row), strict=True))


def read_downloads(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    result = {s: {"count": 0, "bytes": 0} for s in ("pending", "downloaded", "failed", "expired")}
    for status, (count, size) in files.totals_by_state(conn).items():
        result[status] = {"count": count, "bytes": size}
    return result


def read_full_sync(conn: psycopg.Connection, hosts: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The latest full-sync runs, newest first, as `eva00 full-sync --status --json` shows them
    (without the per-kind rows and the raw error list: ``reason`` has the first raw errors,
    ``reasons`` all of them aggregated per kind and reason)."""

    keep = ("run_id", "status", "reason", "reasons", "current_phase", "percent", "requests", "floor",
            "requests_over_floor", "api_requests_over_floor", "items", "pages", "files", "files_done",
            "file_requests", "file_floor", "errors", "rate_per_s", "eta_s", "elapsed_s", "started_at",
            "finished_at")
    return [{name: value for name, value in status_of(conn, run, hosts=hosts).items() if name in keep}
            for run in load_runs(conn, limit=5)]


def read_schedule(conn: psycopg.Connection[Any], settings: Settings) -> list[dict[str, Any]]:
    """Per family: its interval (the seed's), the median planned one, how many pairs are polled at
    the seed's, and the requests a minute its plans ask for with their share of the budget."""
    if settings.schedule_mode != "adaptive":
        return []
    live = [int(r[0]) for r in conn.execute(
        "SELECT procore_id FROM projects WHERE kind = 'project' AND NOT is_deleted")]
    budget = settings.budget_scheduled_per_min
    return [{"family": d.family, "seed_interval_s": settings.poll_intervals_s[d.family],
             "planned_interval_s": d.median_interval_s, "pairs": d.pairs, "at_seed": d.active_pairs,
             "requests_per_min": round(d.planned_per_min, 2),
             "budget_share": round(d.planned_per_min / budget, 3)}
            for d in plans.demand(conn, FAMILY_KINDS, live) if d.pairs]


def read_alerts(conn: psycopg.Connection) -> list[dict[str, Any]]:
    cols = ("id", "alert_key", "severity", "status", "message", "opened_at", "last_seen_at",
            "occurrences")
    rows = conn.execute(f"SELECT {', '.join(cols)} FROM alerts WHERE status <> 'resolved'"
                        " ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1"
                        " ELSE 2 END, opened_at DESC LIMIT 100").fetchall()
    return [dict(zip(cols, row, strict=True)) for row in rows]


def read_dead_letters(conn: psycopg.Connection, now: datetime) -> dict[str, Any]:
    row = conn.execute("SELECT count(*), count(*) FILTER (WHERE at >= %s) FROM dead_letters",
                       (now - timedelta(hours=24),)).fetchone()
    assert row is not None
    recent = [{"stream": s, "message_id": m, "error": (e or "")[:300], "at": a}
              for s, m, e, a in conn.execute(
                  "SELECT stream, message_id, error, at FROM dead_letters ORDER BY at DESC LIMIT 5")]
    return {"total": int(row[0]), "last_24h": int(row[1]), "recent": recent}


# --- Redis sections ---

def read_limiter(client: redis.Redis, settings: Settings, keys: ProcoreKeys = DEFAULT_KEYS) -> LimiterView:
    seconds, micros = client.time()
    now_us = int(seconds) * US_PER_S + int(micros)
    bucket = {as_text(k): as_text(v) for k, v in client.hgetall(keys.rate_bucket).items()}
    tokens = None
    if "tokens" in bucket:
        elapsed_s = max(0, now_us - int(float(bucket.get("ts_us", now_us)))) / US_PER_S
        tokens = min(float(settings.rate_burst),
                     float(bucket["tokens"]) + elapsed_s * settings.rate_refill_per_s)
    minute_ago = now_us - 60 * US_PER_S
    per_class = {c.value: int(client.zcount(keys.rate_used(c.value), minute_ago, "+inf")) for c in CLASSES}
    window_start_us = now_us - int(settings.rate_window_s * US_PER_S)
    window_used = int(client.zcount(keys.rate_window, window_start_us, "+inf"))
    pause_raw = client.get(keys.pause_until)
    paused_for_s = max(0.0, (int(pause_raw) - now_us) / US_PER_S) if pause_raw else 0.0
    reason = client.get(keys.pause_reason) if paused_for_s else None
    circuit = client.hget(keys.circuit, "state")
    halted = client.get(keys.oauth_halted)
    return LimiterView(
        bucket_tokens=tokens, burst=settings.rate_burst, window_used=window_used,
        window_max=settings.rate_window_max, requests_last_min=per_class, paused_for_s=paused_for_s,
        pause_reason=as_text(reason) if reason else None,
        circuit=as_text(circuit) if circuit else "closed",
        server={as_text(k): as_text(v) for k, v in client.hgetall(keys.server_view).items()},
        oauth_halted=as_text(halted) if halted else None)


def read_pending_jobs(client: redis.Redis) -> int:

    return sum(1 for _ in client.scan_iter(match=f"{keys.JOB_PENDING_PREFIX}:*", count=1000))


def read_disk(path: Path) -> dict[str, Any]:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {"path": str(path), "total_bytes": usage.total, "free_bytes": usage.free,
            "free_ratio": usage.free / usage.total if usage.total else 0.0}


# --- assembly ---

ProcessLister = Callable[[], list[dict[str, Any]]]


class StatusReader:
    """Reads snapshots; a long-lived reader (the dashboard's, asked every 2 s by each open page)
    re-counts the families' rows at most every ``counts_ttl_s``: counting 100k+ records scans
    every entity table, and a count a few seconds old changes nothing an operator decides."""

    def __init__(self, settings: Settings, client: redis.Redis, pool: ConnectionPool, *,
                 processes: ProcessLister | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 counts_ttl_s: float = 30.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.redis, self.pool = settings, client, pool
        self.processes, self.clock = processes, clock
        self.counts_ttl_s, self.monotonic = counts_ttl_s, monotonic
        self._counts: tuple[float, dict[str, dict[str, Any]]] | None = None

    def snapshot(self) -> Snapshot:
        snap = Snapshot(at=self.clock())
        self._section(snap, "postgres", lambda: self._pg(snap))
        self._section(snap, "redis", lambda: self._redis(snap))
        self._section(snap, "disk", lambda: setattr(snap, "disk", read_disk(self.settings.data_dir)))
        if self.processes is not None:
            self._section(snap, "supervisord", lambda: setattr(snap, "processes", [
                {"name": f"{p['group']}:{p['name']}", "state": p["statename"],
                 "description": p.get("description", "")} for p in self.processes()]))  # type: ignore[misc]
        return snap

    def pair(self, family: str, project_id: int) -> dict[str, Any]:
        """One heat-map cell's detail (glance.read_pair); an unreachable database is an error text."""
        now = self.clock()
        try:
            with self.pool.connection() as conn:
                fresh = read_freshness(conn, self.settings.poll_intervals_s, now)
                return read_pair(conn, family, project_id, fresh, now)
        except psycopg.Error as exc:
            return {"family": family, "project_id": project_id or None, "error": str(exc).strip()}

    @staticmethod
    def _section(snap: Snapshot, name: str, read: Callable[[], None]) -> None:
        try:
            read()
        except (psycopg.Error, redis.RedisError, OSError) as exc:
            snap.errors[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except Exception as exc:  # xmlrpc faults and the like: the page must still render
            snap.errors[name] = f"{type(exc).__name__}: {exc}"

    def _pg(self, snap: Snapshot) -> None:
        with self.pool.connection() as conn:
            snap.freshness = read_freshness(conn, self.settings.poll_intervals_s, snap.at)
            snap.errors_24h = read_errors_24h(conn, snap.at)
            snap.downloads = read_downloads(conn)

            snap.full_sync = read_full_sync(conn, api_hosts(self.settings))
            snap.alerts = read_alerts(conn)
            snap.dead_letters = read_dead_letters(conn, snap.at)
            snap.family_counts = self._family_counts(conn)
            snap.schedule = read_schedule(conn, self.settings)
        snap.pending["files_pending"] = snap.downloads["pending"]["count"]

    def _family_counts(self, conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
        now = self.monotonic()
        if self._counts is None or now - self._counts[0] >= self.counts_ttl_s:
            self._counts = (now, read_family_counts(conn))
        return self._counts[1]

    def _redis(self, snap: Snapshot) -> None:
        snap.limiter = read_limiter(self.redis, self.settings)
        snap.procore_calls = [dataclasses.asdict(c) for c in Metrics(self.redis).calls()]
        snap.streams = [dataclasses.asdict(r) for r in backlog_rows(self.redis)]
        snap.pending["poll_jobs_pending"] = read_pending_jobs(self.redis)
        snap.pending["stream_lag"] = sum(max(0, int(r["lag"])) for r in snap.streams)
        snap.pending["stream_pending"] = sum(int(r["pending"]) for r in snap.streams)


# --- terminal ---

_LEVEL_STYLE = {"ok": "green", "late": "yellow", "stale": "bold red", "never": "dim"}


def render(snap: Snapshot, console: Any, details: Sequence[Freshness] | None = None) -> None:
    """The per-family summary, open alerts, then the rest; ``details``: the per-pair rows to show
    too (`--family`, `--project`, `--all`)."""
    from eva00.ops.glance import render_freshness, render_summary

    render_summary(console, snap.at, snap.summary())
    _render_rows(console, "Open alerts", alert_groups(snap.alerts),
                 ("severity", "alert_key", "status", "count", "message"))
    if details is not None:
        render_freshness(console, details, _LEVEL_STYLE)
    if snap.schedule:
        _render_schedule(console, snap.schedule)
    _render_pairs(console, "Errors (24 h)", snap.errors_24h)
    if snap.limiter:
        lim = snap.limiter
        tokens = "-" if lim.bucket_tokens is None else f"{lim.bucket_tokens:.1f}"
        _render_pairs(console, "Rate limiter", {
            "bucket": f"{tokens} / {lim.burst}", "window": f"{lim.window_used} / {lim.window_max}",
            **{f"req/min {k}": v for k, v in lim.requests_last_min.items()},
            "paused for s": f"{lim.paused_for_s:.1f}", "circuit": lim.circuit,
            "oauth halted": lim.oauth_halted or "no"})
    _render_rows(console, "Streams", snap.streams, ("stream", "group", "length", "pending", "lag"))
    _render_pairs(console, "Pending", snap.pending)
    _render_pairs(console, "Downloads",
                  {k: f"{v['count']} ({v['bytes']} B)" for k, v in snap.downloads.items()})
    _render_rows(console, "Full sync", snap.full_sync,
                 ("run_id", "status", "current_phase", "items", "requests", "floor", "eta_s"))
    _render_reasons(console, snap.full_sync)
    _render_pairs(console, "Dead letters", {k: v for k, v in snap.dead_letters.items() if k != "recent"})
    if snap.disk:
        _render_pairs(console, "Disk", {"path": snap.disk["path"], "free": f"{snap.disk['free_ratio']:.1%}"})
    _render_rows(console, "Processes", snap.processes, ("name", "state", "description"))
    for name, error in snap.errors.items():
        console.print(f"[bold red]{name} unavailable:[/] {error}")


def _render_schedule(console: Any, rows: Sequence[dict[str, Any]]) -> None:
    from rich.table import Table

    total = sum(r["requests_per_min"] for r in rows)
    share = sum(r["budget_share"] for r in rows)
    table = Table(title="Schedule: how often each family is polled (adaptive)",
                  caption=f"{total:.1f} requests a minute planned, {100 * share:.0f}% of the scheduled"
                          " budget")
    for name in ("family", "interval", "planned (median)", "pairs", "at interval", "req/min", "budget"):
        table.add_column(name, justify="left" if name == "family" else "right")
    for r in rows:
        planned = r["planned_interval_s"]
        table.add_row(r["family"], _duration(r["seed_interval_s"]),
                      "-" if planned is None else _duration(planned), str(r["pairs"]), str(r["at_seed"]),
                      f"{r['requests_per_min']:.2f}", f"{100 * r['budget_share']:.0f}%")
    console.print(table)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _render_reasons(console: Any, runs: Sequence[dict[str, Any]]) -> None:
    """Why each incomplete run is incomplete: one line per (kind, reason), not one per job."""
    from rich.markup import escape

    for run in runs:
        if run["status"] == "incomplete" and run.get("reasons"):
            console.print(f"[red]full sync {run['run_id']} incomplete:[/red]")
            for line in reasons.lines(run["reasons"]):
                console.print(f"  {escape(line)}", soft_wrap=True)


def alert_groups(alerts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open alerts, one row per severity, status and family: the alert key without a trailing
    project id (``project-forbidden:10001`` and ``:10002`` are one row ``project-forbidden:*``
    with their count, example ids and the first one's message). Order is kept."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for alert in alerts:
        head, _, tail = str(alert["alert_key"]).rpartition(":")
        family = f"{head}:*" if head and tail.isdigit() else str(alert["alert_key"])
        groups.setdefault((alert["severity"], family, alert["status"]), []).append(alert)
    rows = []
    for (severity, family, status), members in groups.items():
        message = str(members[0]["message"])
        if len(members) > 1:
            ids = [str(m["alert_key"]).rpartition(":")[2] for m in members]
            message = f"{reasons.where(len(ids), ids[:reasons.EXAMPLES])}; first: {message}"
        rows.append({"severity": severity, "alert_key": family if len(members) > 1 else
                     members[0]["alert_key"], "status": status, "count": len(members), "message": message})
    return rows


def _render_pairs(console: Any, title: str, pairs: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in pairs.items():
        table.add_row(str(key), str(value))
    console.print(table)


def _render_rows(console: Any, title: str, rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in cols:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in cols))
    console.print(table)


def supervisor_lister(settings: Settings) -> ProcessLister:

    return lambda: list(supervision.rpc(settings).supervisor.getAllProcessInfo())
