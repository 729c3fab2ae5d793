"""Deletes within one poll interval: every poll of a kind with a documented delete signal asks it
once (recycle bin, include_deleted, deleted_only, inactive list), what it names is soft-deleted
within the mass-delete guard, and a failed or partial signal listing deletes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest
import redis

from eva00.procore.deleted import asked_on, deleted_request
from eva00.procore.endpoints import ENDPOINTS
from eva00.proof.bench.deletes import SIGNALLED_KINDS, quiet_interval
from eva00.proof.pipeline_local import LocalPipeline as Pipeline
from eva00.replica import deletes
from eva00.replica.records import FetchedRecord, upsert_records
from eva00.simulator.testing import SimHandle

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
PROJECT = 7


def test_every_documented_delete_signal_is_declared_and_filters_deleted_is_none() -> None:
    assert set(SIGNALLED_KINDS) == {"vendor", "company_user", "project_user", "submittal", "rfi",
                                    "change_event", "change_order_package", "potential_change_order",
                                    "meeting", "document"}
    paths = {kind: deleted_request(ENDPOINTS[kind], company_id=1, project_id=2, window=None)
             for kind in SIGNALLED_KINDS}
    assert paths["vendor"][0] == "/rest/v1.0/companies/1/vendors/inactive"
    assert paths["company_user"][0] == "/rest/v1.0/companies/1/users/inactive"
    assert paths["project_user"][0] == "/rest/v1.0/projects/2/users/inactive"
    assert paths["meeting"][1]["deleted_only"] == "true"
    assert all("filters[deleted]" not in spec.deleted.listing_query for spec in ENDPOINTS.values())


def test_a_recycle_bin_is_asked_for_the_polls_window_and_an_inactive_list_whole() -> None:
    from eva00.procore.paging import Window

    window = Window("2026-11-01T10:00:00Z", "2026-11-01T10:05:00Z")
    _path, rfi = deleted_request(ENDPOINTS["rfi"], company_id=1, project_id=2, window=window)
    _path, vendor = deleted_request(ENDPOINTS["vendor"], company_id=1, project_id=None, window=window)
    assert rfi["filters[updated_at]"] == "2026-11-01T10:00:00Z...2026-11-01T10:05:00Z"
    assert "filters[updated_at]" not in vendor
    # Full listings of updated_at kinds find deletes by absence; kinds listed whole ask both.
    assert asked_on(ENDPOINTS["rfi"], "incremental") and not asked_on(ENDPOINTS["rfi"], "reconcile")
    assert asked_on(ENDPOINTS["meeting"], "reconcile") and not asked_on(ENDPOINTS["image"], "incremental")


def test_deletes_made_during_churn_are_soft_deleted_by_one_quiet_poll_at_one_request_per_poll(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], redis_client: redis.Redis) -> None:
    pipeline = make_pipeline(sim)
    pipeline.sync_everything()
    figures = quiet_interval(sim, pipeline, redis_client, pipeline.scheduler.live_project_ids())
    assert figures.deleted_upstream >= len(SIGNALLED_KINDS)
    assert (figures.missed, figures.false) == (0, 0), figures.examples
    assert set(figures.polls) == set(SIGNALLED_KINDS)
    assert figures.signal_requests == figures.polls, "one deleted listing per poll of a signalled kind"
    assert figures.extra_requests_per_poll <= 1.0
    with psycopg.connect(pipeline.settings.effective_database_url) as conn:
        by_signal = conn.execute("SELECT DISTINCT kind FROM sync_log WHERE action = 'soft_delete'"
                                 " AND result = 'ok' AND detail->>'reason' = 'confirmed_deleted'").fetchall()
    # Each kind's deletes came from its own signal (meetings too, before their listing's absence).
    assert {row[0] for row in by_signal} == set(SIGNALLED_KINDS)


def _rfi_deleted_upstream(sim: SimHandle, pipeline: Pipeline, database_url: str) -> tuple[int, int]:
    pipeline.sync_everything()
    with psycopg.connect(database_url) as conn:
        rfi_id, project = conn.execute("SELECT procore_id, project_id FROM rfis WHERE NOT is_deleted"
                                       " ORDER BY procore_id LIMIT 1").fetchone()
    sim.mutate("delete", "rfi", id=rfi_id, project_id=project)
    time.sleep(1.05)  # Date has whole seconds: the listing must come after the delete's second
    return int(rfi_id), int(project)


def _is_deleted(database_url: str, rfi_id: int) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT is_deleted FROM rfis WHERE procore_id = %s", (rfi_id,)).fetchone()
    assert row is not None
    return bool(row[0])


@pytest.mark.parametrize("fault", ["wrong_total", "malformed_json"])
def test_a_failed_or_partial_delete_listing_soft_deletes_nothing(
        sim: SimHandle, make_pipeline: Callable[[SimHandle], Pipeline], database_url: str,
        fault: str) -> None:
    pipeline = make_pipeline(sim)
    rfi_id, _project = _rfi_deleted_upstream(sim, pipeline, database_url)
    with psycopg.connect(database_url) as conn:
        cursor_before = conn.execute("SELECT max(cursor_at) FROM sync_cursors WHERE kind = 'rfi'").fetchone()
    sim.set_faults(fault, ratio=1.0, count=100, paths="/rest/v1.0/projects/[0-9]+/rfis/recycle_bin")
    pipeline.scheduler.tick_family("rfis")
    pipeline.drain()
    hits = sum(f["hits"] for f in sim.faults())
    sim.clear_faults()
    assert hits >= 1, "the recycle bin was asked"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM replica_records WHERE is_deleted").fetchone() == (0,)
        cursor_after = conn.execute("SELECT max(cursor_at) FROM sync_cursors WHERE kind = 'rfi'").fetchone()
    assert not _is_deleted(database_url, rfi_id)
    # The signal fails alone: the poll itself completed, moved its cursor, and nothing dead-lettered.
    assert cursor_after[0] > cursor_before[0] and pipeline.fetcher.stats.dead_lettered == 0
    seq = max(e["seq"] for e in sim.ledger())
    pipeline.scheduler.tick_family("rfis")
    pipeline.drain()
    assert _is_deleted(database_url, rfi_id)
    # The failed window is behind the cursor now: the next listing asks the whole recycle bin.
    bins = [e for e in sim.ledger(since_seq=seq) if e["path"].endswith("/rfis/recycle_bin")]
    assert bins and all("updated_at" not in unquote(e["query"]) for e in bins)
    seq = max(e["seq"] for e in sim.ledger())
    pipeline.scheduler.tick_family("rfis")
    pipeline.drain()
    bins = [e for e in sim.ledger(since_seq=seq) if e["path"].endswith("/rfis/recycle_bin")]
    assert bins and all("filters[updated_at]" in unquote(e["query"]) for e in bins), "windowed again"


# --- the guard on the signal path (replica level) ---

@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url) as connection:
        yield connection


def _stored(conn: psycopg.Connection[Any], count: int) -> None:
    upsert_records(conn, [FetchedRecord("rfi", i, PROJECT, {"id": i, "subject": f"RFI {i}"}, T0, "api")
                          for i in range(1, count + 1)])
    conn.commit()


def _live(conn: psycopg.Connection[Any]) -> list[int]:
    return [int(r[0]) for r in conn.execute("SELECT procore_id FROM rfis WHERE NOT is_deleted ORDER BY 1")]


def test_what_a_delete_signal_names_is_soft_deleted_never_hard_deleted(conn: psycopg.Connection[Any]) -> None:
    _stored(conn, 20)
    result = deletes.soft_delete_signalled(conn, "rfi", PROJECT, [4, 9, 404], max_ratio=0.10,
                                           at=T0 + timedelta(hours=1))
    conn.commit()
    assert result == deletes.DeleteResult(live=20, would_delete=2, deleted=2, guard_tripped=False)
    assert _live(conn) == [i for i in range(1, 21) if i not in (4, 9)]
    assert conn.execute("SELECT count(*) FROM rfis").fetchone() == (20,)


def test_a_delete_signal_naming_too_many_records_holds_them_until_a_second_signal(
        conn: psycopg.Connection[Any]) -> None:
    _stored(conn, 10)
    first = deletes.soft_delete_signalled(conn, "rfi", PROJECT, [8, 9, 10], max_ratio=0.10,
                                          at=T0 + timedelta(hours=1))
    conn.commit()
    assert (first.guard_tripped, first.deleted, first.held) == (True, 0, 3)
    assert _live(conn) == list(range(1, 11))
    # A complete listing that misses two of them is the second signal; the third was listed alive.
    second = deletes.soft_delete_missing(conn, "rfi", PROJECT, range(1, 9), max_ratio=0.10,
                                         at=T0 + timedelta(hours=2))
    conn.commit()
    assert (second.guard_tripped, second.deleted) == (False, 2)
    assert _live(conn) == list(range(1, 9))


def test_a_record_fetched_alive_after_the_signal_is_not_deleted_by_it(conn: psycopg.Connection[Any]) -> None:
    _stored(conn, 5)
    result = deletes.soft_delete_signalled(conn, "rfi", PROJECT, [3], max_ratio=0.10,
                                           at=T0 - timedelta(minutes=1))
    assert result.deleted == 0 and _live(conn) == [1, 2, 3, 4, 5]
