"""Issue 17 finding 5: unbounded downloads. An endless body is cut at EVA00_DOWNLOAD_MAX_BYTES, a
slow drip is cut by the minimum rate or the deadline, free disk is checked again while a file is
written; such a file is marked failed with the reason and an alert, and other downloads go on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.procore.transfer import DownloadLimits
from eva00.simulator.testing import SimHandle
from eva00.stages.downloader import LIMIT_ALERT_PREFIX
from tests.integration.test_downloader import Rig, make_rig


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=6, open=True) as opened:
        yield opened


def limited(settings: Settings, **limits: Any) -> Settings:
    return settings.replace(**{f"download_{name}": value for name, value in limits.items()})


def alerts(pool: ConnectionPool) -> list[tuple[str, str]]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT alert_key, message FROM alerts WHERE status = 'open'"
                            " AND alert_key LIKE %s", (f"{LIMIT_ALERT_PREFIX}%",)).fetchall()
    return [(str(k), str(m)) for k, m in rows]


def one_file(rig: Rig, size_bytes: int, fault: str | None = None, **spec: Any) -> tuple[int, dict[str, Any]]:
    made = rig.sim.new_file(size_bytes)
    if fault is not None:
        rig.sim.set_faults(fault, host="storage", paths=f"/blobs/{made['file_id']}$", **spec)
    return rig.link(str(made["url"]), procore_id=int(made["file_id"])), made


def test_an_endless_body_is_cut_at_the_maximum_size_and_the_file_fails_with_an_alert(
        settings: Settings, sim: SimHandle, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    rig = make_rig(sim, limited(settings, max_bytes=300_000), redis_client, pool)
    endless, _made = one_file(rig, 20_000, "endless")
    rig.drain()
    row = rig.row(endless)
    assert row["status"] == "failed" and "EVA00_DOWNLOAD_MAX_BYTES" in row["last_error"]
    assert row["attempts"] == 1  # a limit is not retried
    assert [key for key, _m in alerts(pool)] == [f"{LIMIT_ALERT_PREFIX}{endless}"]
    served = sum(e["bytes"] for e in sim.ledger() if e["host"] == "storage")
    assert served < 300_000 + 8 * 1024 * 1024  # what was in flight when the socket closed, no more
    assert list(rig.store.root.parent.rglob("rf*")) == []  # no temp file left behind
    sim.clear_faults()
    fine, made = one_file(rig, 50_000)
    rig.drain()
    assert rig.row(fine)["sha256"] == rig.truth_sha256(int(made["file_id"]))


def test_a_content_length_over_the_maximum_is_refused_before_reading_the_body(
        settings: Settings, sim: SimHandle, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    rig = make_rig(sim, limited(settings, max_bytes=100_000), redis_client, pool)
    big, _made = one_file(rig, 2_000_000)
    rig.drain()
    row = rig.row(big)
    assert row["status"] == "failed" and "larger than 100000 bytes" in row["last_error"]


def test_a_slow_drip_is_cut_by_the_minimum_rate(settings: Settings, sim: SimHandle,
                                                redis_client: redis.Redis, pool: ConnectionPool) -> None:
    rig = make_rig(sim, limited(settings, min_rate_bytes_s=50_000, rate_window_s=0.5), redis_client, pool)
    drip, _made = one_file(rig, 30_000, "drip", delay_s=0.02)  # 64 bytes / 20 ms: about 3 KB/s
    rig.drain()
    row = rig.row(drip)
    assert row["status"] == "failed" and "EVA00_DOWNLOAD_MIN_RATE_BYTES_S" in row["last_error"]
    assert alerts(pool) and "below the minimum" in alerts(pool)[0][1]


def test_a_drip_fast_enough_for_the_rate_is_still_cut_by_the_deadline(
        settings: Settings, sim: SimHandle, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    rig = make_rig(sim, limited(settings, min_rate_bytes_s=1, deadline_s=1.0), redis_client, pool)
    drip, _made = one_file(rig, 30_000, "drip", delay_s=0.02)
    rig.drain()
    row = rig.row(drip)
    assert row["status"] == "failed" and "EVA00_DOWNLOAD_DEADLINE_S" in row["last_error"]


def test_other_downloads_proceed_while_a_drip_holds_a_slot(
        settings: Settings, sim: SimHandle, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    slow_settings = limited(settings, min_rate_bytes_s=1, deadline_s=4.0)
    slow = make_rig(sim, slow_settings, redis_client, pool)
    drip, _made = one_file(slow, 60_000, "drip", delay_s=0.05)
    worker = threading.Thread(target=slow.drain)
    worker.start()
    try:
        for _ in range(200):  # until the drip holds a download slot
            if redis_client.zcard(keys.DOWNLOAD_SLOTS):
                break
            time.sleep(0.02)
        assert redis_client.zcard(keys.DOWNLOAD_SLOTS) == 1
        fast = make_rig(sim, settings, redis_client, pool)
        files = [one_file(fast, 20_000 + n) for n in range(3)]
        fast.drain()
        for link, made in files:
            assert fast.row(link)["sha256"] == fast.truth_sha256(int(made["file_id"]))
        assert worker.is_alive()  # the drip was still running all along
    finally:
        worker.join(timeout=60)
    assert slow.row(drip)["status"] == "failed"


def test_free_disk_is_checked_again_while_a_large_file_is_written() -> None:
    from eva00.procore.transfer import _Pace

    checks: list[int] = []
    pace = _Pace(DownloadLimits(space_check_bytes=1000), deadline_at=1e12, monotonic=lambda: 0.0,
                 check_space=lambda: checks.append(1))
    for n in range(10):
        pace.add(500, 500 * (n + 1), "https://storage.example/f")
    assert len(checks) == 5
