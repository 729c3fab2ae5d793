"""Every call to Procore, counted and timed per budget class, endpoint and status, in Redis hashes
the dashboard reads (field "class|endpoint|status"). Latencies and limiter waits also go into
cumulative histogram buckets, so a p95 can be read without keeping samples.

Metrics are best effort: a Redis error while recording never fails the call being measured.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from eva00.procore.keys import DEFAULT_KEYS, ProcoreKeys, as_text

log = logging.getLogger(__name__)

# Upper bounds (ms) of the histogram buckets; the last one is everything.
BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000)
_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")


def endpoint_label(path: str) -> str:
    """/rest/v1.0/projects/123/rfis/45 -> /rest/v1.0/projects/{id}/rfis/{id} (no query)."""
    return _ID_SEGMENT.sub("/{id}", path.split("?", 1)[0])


def bucket_label(ms: float) -> str:
    for bound in BUCKETS_MS:
        if ms <= bound:
            return f"le_{bound}"
    return "le_inf"


@dataclass(frozen=True)
class CallStat:
    budget: str
    endpoint: str
    status: str
    calls: int
    total_ms: float


class Metrics:
    def __init__(self, client: redis.Redis, keys: ProcoreKeys = DEFAULT_KEYS) -> None:
        self.redis = client
        self.keys = keys

    def record_call(self, budget: str, endpoint: str, status: int | str, duration_ms: float) -> None:
        field = f"{budget}|{endpoint}|{status}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(self.keys.metrics_calls, field, 1)
        pipe.hincrbyfloat(self.keys.metrics_duration_ms, field, round(duration_ms, 3))
        pipe.hincrby(self.keys.metrics_latency_hist, f"{budget}|{endpoint}|{bucket_label(duration_ms)}", 1)
        self._run(pipe)

    def record_wait(self, budget: str, waited_s: float) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(self.keys.metrics_wait_hist, f"{budget}|{bucket_label(waited_s * 1000)}", 1)
        self._run(pipe)

    def record_event(self, event: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(self.keys.metrics_events, event, 1)
        self._run(pipe)

    def _run(self, pipe: redis.client.Pipeline) -> None:
        try:
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics not recorded: %s", exc)

    # --- reading (dashboard, benchmarks, tests) ---

    def calls(self) -> list[CallStat]:
        counts = _decode(self.redis.hgetall(self.keys.metrics_calls))
        totals = _decode(self.redis.hgetall(self.keys.metrics_duration_ms))
        stats = []
        for field, count in sorted(counts.items()):
            budget, endpoint, status = field.rsplit("|", 2)
            stats.append(CallStat(budget, endpoint, status, int(count), float(totals.get(field, 0))))
        return stats

    def events(self) -> dict[str, int]:
        return {k: int(v) for k, v in _decode(self.redis.hgetall(self.keys.metrics_events)).items()}

    def wait_quantile_ms(self, budget: str, quantile: float) -> float | None:
        """Upper bound (ms) of the bucket holding the quantile of the class's limiter waits."""
        raw = _decode(self.redis.hgetall(self.keys.metrics_wait_hist))
        counts = {f.split("|", 1)[1]: int(v) for f, v in raw.items() if f.startswith(budget + "|")}
        return histogram_quantile(counts, quantile)


def histogram_quantile(counts: Mapping[str, int], quantile: float) -> float | None:
    total = sum(counts.values())
    if not total:
        return None
    seen = 0
    for label in [f"le_{b}" for b in BUCKETS_MS] + ["le_inf"]:
        seen += counts.get(label, 0)
        if seen >= quantile * total:
            return float("inf") if label == "le_inf" else float(label[3:])
    return float("inf")


def _decode(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in raw.items()}
