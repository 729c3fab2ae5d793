"""/metrics: a Prometheus collector that reads Redis and PostgreSQL at scrape time.

Nothing is kept in this process: every scrape takes one status snapshot (eva00/ops/status.py) plus the
Procore call histograms, so any number of dashboard processes (or restarts) report the same values;
the limits the request counts are measured against come from Settings. docs/grafana/eva00.json charts
these names (tests/integration/test_grafana_board.py keeps the two in step).
Counters come from Redis hashes that a FLUSHALL resets; Prometheus' rate() treats that as a reset.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import psycopg
import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from eva00.config import Settings
from eva00.ops.status import Snapshot, StatusReader
from eva00.procore.keys import DEFAULT_KEYS, ProcoreKeys, as_text
from eva00.procore.limiter import LimiterConfig, budgets_per_min
from eva00.procore.metrics import BUCKETS_MS

_BOUNDS = [(f"le_{b}", str(b / 1000)) for b in BUCKETS_MS] + [("le_inf", "+Inf")]


def cumulative(counts: Mapping[str, int]) -> list[tuple[str, float]]:
    """Per-bucket counts ("le_MS" -> n) as Prometheus' cumulative buckets in seconds."""
    total, result = 0, []
    for label, bound in _BOUNDS:
        total += counts.get(label, 0)
        result.append((bound, float(total)))
    return result


def _hash(client: redis.Redis, key: str) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in client.hgetall(key).items()}


class SyncCollector(Collector):
    def __init__(self, reader: StatusReader, keys: ProcoreKeys = DEFAULT_KEYS) -> None:
        self.reader, self.keys = reader, keys

    def collect(self) -> Iterator[Metric]:
        snap = self.reader.snapshot()
        up = GaugeMetricFamily("eva00_source_up", "1 if the source answered this scrape", labels=["source"])
        for source in ("postgres", "redis"):
            up.add_metric([source], 0.0 if source in snap.errors else 1.0)
        yield up
        yield from _limits(self.reader.settings)
        if "redis" not in snap.errors:
            yield from self._procore(snap)
            yield from self._limiter(snap)
            yield from self._streams(snap)
        if "postgres" not in snap.errors:
            yield from self._freshness(snap)
            yield from self._pg_state(snap)
            yield from self._items_changed()
        if snap.disk:
            yield GaugeMetricFamily("eva00_disk_free_ratio", "Free share of the data disk",
                                    value=snap.disk["free_ratio"])

    def _procore(self, snap: Snapshot) -> Iterator[Metric]:
        calls = CounterMetricFamily("eva00_procore_requests", "HTTP calls to Procore",
                                    labels=["budget_class", "endpoint", "status"])
        for c in snap.procore_calls:
            calls.add_metric([c["budget"], c["endpoint"], c["status"]], c["calls"])
        yield calls
        latency = HistogramMetricFamily("eva00_procore_request_duration_seconds",
                                        "Latency of calls to Procore", labels=["budget_class", "endpoint"])
        sums: dict[tuple[str, ...], float] = {}
        for c in snap.procore_calls:
            pair = (c["budget"], c["endpoint"])
            sums[pair] = sums.get(pair, 0.0) + c["total_ms"] / 1000
        for labels, counts in self._split(self.keys.metrics_latency_hist, 2).items():
            latency.add_metric(list(labels), cumulative(counts), sums.get(labels, 0.0))
        yield latency
        waits = HistogramMetricFamily("eva00_limiter_wait_seconds",
                                      "Time calls waited for a rate limiter token", labels=["budget_class"])
        for labels, counts in self._split(self.keys.metrics_wait_hist, 1).items():
            waits.add_metric(list(labels), cumulative(counts), None)
        yield waits
        events = CounterMetricFamily("eva00_procore_events", "Pauses, refreshes, circuit transitions",
                                     labels=["event"])
        for event, count in _hash(self.reader.redis, self.keys.metrics_events).items():
            events.add_metric([event], float(count))
        yield events

    def _split(self, key: str, label_parts: int) -> dict[tuple[str, ...], dict[str, int]]:
        grouped: dict[tuple[str, ...], dict[str, int]] = {}
        for field, count in _hash(self.reader.redis, key).items():
            *labels, bucket = field.rsplit("|", label_parts)
            grouped.setdefault(tuple(labels), {})[bucket] = int(count)
        return grouped

    @staticmethod
    def _limiter(snap: Snapshot) -> Iterator[Metric]:
        lim = snap.limiter
        if lim is None:
            return
        if lim.bucket_tokens is not None:
            yield GaugeMetricFamily("eva00_limiter_bucket_tokens", "Tokens in the shared bucket",
                                    value=lim.bucket_tokens)
        rpm = GaugeMetricFamily("eva00_limiter_requests_last_minute", "Grants in the last 60 s",
                                labels=["budget_class"])
        for budget, count in lim.requests_last_min.items():
            rpm.add_metric([budget], count)
        yield rpm
        yield GaugeMetricFamily("eva00_limiter_paused_seconds", "Seconds left of the shared pause",
                                value=lim.paused_for_s)
        yield GaugeMetricFamily("eva00_procore_circuit_open", "1 while the 5xx circuit is not closed",
                                value=0.0 if lim.circuit == "closed" else 1.0)

    @staticmethod
    def _streams(snap: Snapshot) -> Iterator[Metric]:
        families = {name: GaugeMetricFamily(f"eva00_stream_{name}", doc, labels=["stream", "group"])
                    for name, doc in (("length", "Entries in the stream"),
                                      ("pending", "Delivered, not yet acknowledged"),
                                      ("lag", "Not yet delivered to the group"))}
        for row in snap.streams:
            for name, family in families.items():
                family.add_metric([row["stream"], row["group"]], row[name])
        yield from families.values()
        yield GaugeMetricFamily("eva00_poll_jobs_pending", "Poll jobs queued, not yet finished",
                                value=snap.pending.get("poll_jobs_pending", 0))

    @staticmethod
    def _freshness(snap: Snapshot) -> Iterator[Metric]:
        # family is a function of kind (eva00/kinds.py): it adds no series, it lets PromQL group by it.
        lag = GaugeMetricFamily("eva00_poll_lag_seconds", "Seconds since the last complete poll",
                                labels=["family", "kind", "project_id"])
        ratio = GaugeMetricFamily("eva00_poll_lag_intervals", "That lag in poll intervals",
                                  labels=["family", "kind", "project_id"])
        for f in snap.freshness:
            if f.age_s is not None:
                labels = [f.family, f.kind, str(f.project_id or 0)]
                lag.add_metric(labels, f.age_s)
                ratio.add_metric(labels, f.intervals_ago or 0.0)
        yield lag
        yield ratio

    @staticmethod
    def _pg_state(snap: Snapshot) -> Iterator[Metric]:
        files = GaugeMetricFamily("eva00_downloads", "Linked files by download status", labels=["status"])
        size = GaugeMetricFamily("eva00_download_bytes", "Bytes of linked files by status", labels=["status"])
        for status, values in snap.downloads.items():
            files.add_metric([status], values["count"])
            size.add_metric([status], values["bytes"])
        yield files
        yield size
        alerts = GaugeMetricFamily("eva00_alerts_open", "Alerts not resolved", labels=["severity"])
        counts = {"info": 0, "warning": 0, "critical": 0}
        for alert in snap.alerts:
            counts[alert["severity"]] += 1
        for severity, count in counts.items():
            alerts.add_metric([severity], count)
        yield alerts
        yield CounterMetricFamily("eva00_dead_letters", "Messages dead-lettered (never pruned)",
                                  value=snap.dead_letters.get("total", 0))

    def _items_changed(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("eva00_items_changed_last_24h", "sync_log actions in the last 24 h",
                                   labels=["kind", "action"])
        rows: Any = []
        try:
            with self.reader.pool.connection() as conn:
                rows = conn.execute(
                    "SELECT coalesce(kind, ''), action, count(*) FROM sync_log WHERE at >= %s"
                    " GROUP BY 1, 2", (self.reader.clock() - timedelta(hours=24),)).fetchall()
        except psycopg.Error:
            rows = []
        for kind, action, count in rows:
            family.add_metric([kind, action], count)
        yield family


def _limits(settings: Settings) -> Iterator[Metric]:
    """What eva00_limiter_requests_last_minute is measured against: configuration, not Redis state."""
    budgets = GaugeMetricFamily("eva00_limiter_budget_requests_per_minute",
                                "Grants per minute each budget class owns (EVA00_BUDGET_*_PER_MIN)",
                                labels=["budget_class"])
    for budget, per_min in budgets_per_min(settings).items():
        budgets.add_metric([budget.value], per_min)
    yield budgets
    yield GaugeMetricFamily("eva00_limiter_limit_requests_per_minute",
                            "Sustained grants per minute the shared limiter allows, all classes together",
                            value=LimiterConfig.from_settings(settings).allowed_rate_per_s * 60)


def make_registry(reader: StatusReader) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SyncCollector(reader))
    return registry

