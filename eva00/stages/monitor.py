"""The monitor stage: evaluates the seed's alert conditions every interval, opens an alert when a
condition holds and resolves it when the condition clears, then delivers owed notifications.

Delivery guarantee: each step's raises and resolutions commit in one PostgreSQL transaction, and
notices go out afterwards from the table (eva00/ops/notify.py), so a crash at any point delays a
notification but never loses one. Every check owns a set of alert keys (a prefix): an open alert
under that prefix that the check no longer finds is resolved. A check that cannot see its source
(Redis down, supervisord not running) returns None and leaves its alerts as they are.

Alerts raised elsewhere are evaluated here too, with the same keys: the 5xx circuit breaker
(`procore-circuit-open`), the refresh token rejection (`procore-auth-reauthorize`), the mass-delete
guard (`mass-delete:KIND:PROJECT`, raised by the differ) and supervisord FATAL
(`process-fatal:NAME`, raised by the event listener); the monitor resolves them when they clear.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.ops.freshness import LATE_INTERVALS, STALE_INTERVALS, read_freshness
from eva00.ops.notify import Notifier
from eva00.ops.status import ProcessLister, read_disk
from eva00.procore.auth import ALERT_REAUTHORIZE, REAUTHORIZE_STEPS
from eva00.procore.circuit import ALERT_CIRCUIT
from eva00.procore.keys import DEFAULT_KEYS, ProcoreKeys, as_text
from eva00.runtime import alerts
from eva00.runtime.alerts import Finding, fatal_finding

log = logging.getLogger(__name__)

US_PER_S = 1_000_000



@dataclass(frozen=True)
class MonitorConfig:
    interval_s: float = 30.0
    conflict_window_s: float = 3600.0  # a conflict keeps its info alert open this long
    dead_letter_window_s: float = 86400.0  # a dead letter keeps its alert open this long


@dataclass(frozen=True)
class StepResult:
    raised: list[str]
    resolved: list[str]
    unknown: list[str]


Check = Callable[[psycopg.Connection, datetime], "list[Finding] | None"]


class Monitor:
    def __init__(self, settings: Settings, client: redis.Redis, pool: ConnectionPool,
                 notifier: Notifier | None = None, *, config: MonitorConfig = MonitorConfig(),
                 processes: ProcessLister | None = None, pkeys: ProcoreKeys = DEFAULT_KEYS,
                 disk_free_ratio: Callable[[], float] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings, self.redis, self.pool, self.notifier = settings, client, pool, notifier
        self.config, self.processes, self.pkeys, self.clock = config, processes, pkeys, clock
        self.disk_free_ratio = disk_free_ratio or (lambda: float(read_disk(settings.data_dir)["free_ratio"]))
        # prefix -> check; the prefix names every alert key the check owns
        self.checks: dict[str, Check] = {
            "sync-late:": self.check_late, "sync-stale:": self.check_stale,
            "rate-limit-exhausted": self.check_rate_limit, ALERT_CIRCUIT: self.check_circuit,
            "sync-conflict": self.check_conflicts, "disk-space-low": self.check_disk,
            ALERT_REAUTHORIZE: self.check_reauthorize, "dead-letters": self.check_dead_letters,
            "mass-delete:": self.check_mass_delete, "process-fatal:": self.check_processes,
        }

    # --- the loop ---

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except (psycopg.OperationalError, redis.ConnectionError) as exc:
                log.warning("monitor step skipped, a source is unavailable: %s", exc)
            except Exception:
                log.exception("monitor step failed")
            stop.wait(self.config.interval_s)

    def step(self) -> StepResult:
        now = self.clock()
        result = StepResult([], [], [])
        with self.pool.connection() as conn:
            for prefix, check in self.checks.items():
                findings = self._evaluate(prefix, check, conn, now)
                if findings is None:
                    result.unknown.append(prefix)
                    continue
                self._apply(conn, prefix, findings, result)
        self._after_commit(result)
        if self.notifier is not None:
            self.notifier.deliver_pending()
        return result

    @staticmethod
    def _evaluate(prefix: str, check: Check, conn: psycopg.Connection,
                  now: datetime) -> list[Finding] | None:
        try:
            return check(conn, now)
        except (redis.RedisError, OSError) as exc:
            log.warning("check %s skipped: %s", prefix, exc)
            return None

    @staticmethod
    def _apply(conn: psycopg.Connection, prefix: str, findings: Sequence[Finding],
               result: StepResult) -> None:
        is_prefix = prefix.endswith(":")
        open_keys = {r[0] for r in conn.execute(
            "SELECT alert_key FROM alerts WHERE status <> 'resolved' AND"
            + (" starts_with(alert_key, %s)" if is_prefix else " alert_key = %s"), (prefix,))}
        for finding in findings:
            # An open alert is left alone: occurrences count real events, not monitor passes.
            if finding.key not in open_keys:
                alerts.raise_alert(conn, finding.key, finding.severity, finding.message, finding.details)
                result.raised.append(finding.key)
        for key in sorted(open_keys - {f.key for f in findings}):
            if alerts.resolve_alert(conn, key):
                log.info("alert %s resolved: the condition cleared", key)
                result.resolved.append(key)

    def _after_commit(self, result: StepResult) -> None:
        """The late-sync action "retry": drop the kind's pending-job marker, so the scheduler
        enqueues it again on its next tick instead of waiting for the marker to expire."""
        for key in result.raised:
            if key.startswith("sync-late:"):
                _, kind, project = key.split(":")
                try:
                    self.redis.delete(keys.job_pending_key(kind, int(project) or None))
                except redis.RedisError as exc:
                    log.warning("could not clear the pending marker of %s: %s", key, exc)

    # --- checks ---

    def check_late(self, conn: psycopg.Connection, now: datetime) -> list[Finding]:
        return self._freshness(conn, now, LATE_INTERVALS, "sync-late", "warning")

    def check_stale(self, conn: psycopg.Connection, now: datetime) -> list[Finding]:
        return self._freshness(conn, now, STALE_INTERVALS, "sync-stale", "critical")

    def _freshness(self, conn: psycopg.Connection, now: datetime, times: float, prefix: str,
                   severity: str) -> list[Finding]:
        findings = []
        for f in read_freshness(conn, self.settings.poll_intervals_s, now):
            if f.age_s is None or f.age_s < times * f.interval_s:
                continue
            findings.append(Finding(
                f"{prefix}:{f.kind}:{f.project_id or 0}", severity,
                f"{f.kind} (project {f.project_id or 'company'}) not synced for {f.age_s:.0f} s,"
                f" {f.age_s / f.interval_s:.1f}x its {f.interval_s} s interval",
                {"kind": f.kind, "project_id": f.project_id, "age_s": round(f.age_s),
                 "interval_s": f.interval_s}))
        return findings

    def check_rate_limit(self, conn: psycopg.Connection, now: datetime) -> list[Finding]:
        """Exhausted: a shared pause is holding every process (429, or the server's Remaining near
        zero). The limiter itself backs off and resumes; this only tells the operator."""
        pause_raw = self.redis.get(self.pkeys.pause_until)
        seconds, micros = self.redis.time()
        left_s = (int(pause_raw) - (int(seconds) * US_PER_S + int(micros))) / US_PER_S if pause_raw else 0.0
        reason_raw = self.redis.get(self.pkeys.pause_reason)
        reason = as_text(reason_raw) if reason_raw else ""
        if left_s <= 0 or not (reason.startswith(("429", "server Remaining"))):
            return []
        return [Finding("rate-limit-exhausted", "warning",
                        f"Procore rate limit exhausted ({reason}); every process waits {left_s:.0f} s"
                        " and resumes in the next window", {"reason": reason, "pause_s": round(left_s, 1)})]

    def check_circuit(self, conn: psycopg.Connection, now: datetime) -> list[Finding]:
        raw = self.redis.hget(self.pkeys.circuit, "state")
        state = as_text(raw) if raw else "closed"
        if state == "closed":
            return []
        return [Finding(ALERT_CIRCUIT, "critical",
                        f"Procore is answering 5xx: the circuit breaker is {state}; calls back off and"
                        " one request at a time probes until it answers again", {"state": state})]

    def check_conflicts(self, conn: psycopg.Connection, now: datetime) -> list[Finding]:
        since = now - timedelta(seconds=self.config.conflict_window_s)
        rows = conn.execute("SELECT kind, count(*) FROM sync_log WHERE action = 'conflict' AND at >= %s"
                            " GROUP BY kind ORDER BY kind", (since,)).fetchall()
        if not rows:
            return []
        counts = {kind or "": int(n) for kind, n in rows}
        return [Finding("sync-conflict", "info",
                        f"{sum(counts.values())} sync conflicts (Procore won) in the last"
                        f" {self.config.conflict_window_s:.0f} s; see sync_log action 'conflict'",
                        {"by_kind": counts})]

    def check_disk(self, conn: psycopg.Connection, now: datetime) -> list[Finding]:
        ratio = self.disk_free_ratio()
        if ratio >= self.settings.disk_free_min_ratio:
            return []
        return [Finding("disk-space-low", "critical",
                        f"only {ratio:.1%} of the data disk is free (minimum"
                        f" {self.settings.disk_free_min_ratio:.0%}): downloads pause until space is freed",
                        {"free_ratio": round(ratio, 4), "path": str(self.settings.data_dir)})]

    def check_reauthorize(self, conn: psycopg.Connection, now: datetime) -> list[Finding]:

        row = conn.execute("SELECT last_error FROM oauth_tokens WHERE last_error LIKE"
                           " 'reauthorization required%%' LIMIT 1").fetchone()
        if row is None:
            return []
        return [Finding(ALERT_REAUTHORIZE, "critical", REAUTHORIZE_STEPS,
                        {"error": row[0], "command": "eva00 auth login"})]

    def check_dead_letters(self, conn: psycopg.Connection, now: datetime) -> list[Finding]:
        since = now - timedelta(seconds=self.config.dead_letter_window_s)
        rows = conn.execute("SELECT stream, count(*) FROM dead_letters WHERE at >= %s GROUP BY stream"
                            " ORDER BY stream", (since,)).fetchall()
        if not rows:
            return []
        counts = {stream: int(n) for stream, n in rows}
        return [Finding("dead-letters", "warning",
                        f"{sum(counts.values())} messages dead-lettered recently; inspect the"
                        " dead_letters table (error column) and re-enqueue after fixing the cause",
                        {"by_stream": counts})]

    def check_mass_delete(self, conn: psycopg.Connection, now: datetime) -> list[Finding]:
        """Still tripped: no complete reconcile poll of that kind and project finished after the
        guard last tripped (the differ bumps last_seen_at in the transaction that finishes the
        tripping poll, so only a later, clean reconciliation clears it)."""
        rows = conn.execute(
            "SELECT a.alert_key, a.severity, a.message, a.details FROM alerts a"
            " WHERE a.status <> 'resolved' AND starts_with(a.alert_key, 'mass-delete:')"
            " AND NOT EXISTS (SELECT 1 FROM poll_pages p WHERE p.mode = 'reconcile' AND p.is_last"
            "   AND p.complete AND p.finished_at > a.last_seen_at"
            "   AND p.kind = split_part(a.alert_key, ':', 2)"
            "   AND coalesce(p.project_id, 0) = split_part(a.alert_key, ':', 3)::bigint)").fetchall()
        return [Finding(key, severity, message, details or {}) for key, severity, message, details in rows]

    def check_processes(self, conn: psycopg.Connection, now: datetime) -> list[Finding] | None:
        if self.processes is None:
            return None
        try:
            infos = self.processes()
        except Exception as exc:  # supervisord not running or its socket gone: unknown, not healthy
            log.debug("supervisord not reachable: %s", exc)
            return None
        return [fatal_finding(f"{i['group']}:{i['name']}", i.get("description", ""))
                for i in infos if i["statename"] == "FATAL"]

