"""The status model's pure parts: freshness levels, JSON and the terminal rendering."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import orjson
import pytest
from rich.console import Console

from eva00.ops.dashboard.metrics import cumulative
from eva00.ops.freshness import Freshness, freshness_level
from eva00.ops.status import LimiterView, Snapshot, render


@pytest.mark.parametrize("age_s, level", [
    (None, "never"), (0.0, "ok"), (599.0, "ok"), (600.0, "late"), (1499.0, "late"), (1500.0, "stale"),
])
def test_freshness_level_counts_intervals_ago(age_s: float | None, level: str) -> None:
    assert freshness_level(age_s, 300) == level


def snapshot() -> Snapshot:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    snap = Snapshot(at=at, freshness=[Freshness("rfi", "rfis", 7, at, 300, 900.0, "late")])
    snap.limiter = LimiterView(4.5, 10, 12, 95, {"scheduled": 12}, 0.0, None, "closed", {}, None)
    snap.alerts = [{"severity": "critical", "alert_key": "disk-space-low", "status": "open", "message": "m"}]
    return snap


def test_snapshot_json_carries_intervals_ago_and_iso_times() -> None:
    data = orjson.loads(snapshot().to_json())
    assert data["freshness"][0]["intervals_ago"] == 3.0
    assert data["freshness"][0]["last_success_at"].startswith("2030-01-01T00:00:00")
    assert data["limiter"]["requests_last_min"] == {"scheduled": 12}


def test_terminal_rendering_shows_freshness_limiter_and_alerts() -> None:
    out = io.StringIO()
    render(snapshot(), Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    assert "Freshness" in text and "late" in text and "3.0" in text
    assert "4.5 / 10" in text and "disk-space-low" in text


def test_histogram_buckets_become_cumulative_seconds() -> None:
    buckets = cumulative({"le_10": 2, "le_100": 1, "le_inf": 1})
    assert buckets[0] == ("0.01", 2.0)
    assert dict(buckets)["0.1"] == 3.0
    assert buckets[-1] == ("+Inf", 4.0)
