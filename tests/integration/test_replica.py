"""eva00/replica's records, deletes and cursors against real PostgreSQL: every outcome leaves
exactly the rows, history and sync_log entries it should; re-applying changes nothing;
reconciliation soft-deletes only within its guard; cursors never move back; bad input writes
nothing; concurrent differs converge."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from eva00.hashing import payload_hash
from eva00.replica import cursors, deletes
from eva00.replica.records import FetchedRecord, Outcome, upsert_records

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
PROJECT = 7


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url) as connection:
        yield connection


def _rfi(rfi_id: int, subject: str = "Beam size", *, fetched_at: datetime = T0,
         updated_at: str | None = "2026-11-01T09:00:00Z", source: str = "api",
         project_id: int = PROJECT) -> FetchedRecord:
    payload: dict[str, Any] = {"id": rfi_id, "number": str(rfi_id), "subject": subject}
    if updated_at is not None:
        payload["updated_at"] = updated_at
    return FetchedRecord("rfi", rfi_id, project_id, payload, fetched_at, source)


def _upsert(conn: psycopg.Connection[Any], *records: FetchedRecord) -> list[Outcome]:
    outcomes = upsert_records(conn, records)
    conn.commit()
    return outcomes


def _log(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT kind, procore_id, project_id, action, result, payload_hash"
                        " FROM sync_log ORDER BY id").fetchall()


def _versions(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT procore_id, payload->>'subject', payload_hash FROM record_versions"
                        " ORDER BY id").fetchall()


def _row(conn: psycopg.Connection[Any], rfi_id: int = 1) -> dict[str, Any]:
    cursor = conn.execute("SELECT payload->>'subject' AS subject, payload_hash, fetched_at,"
                          " procore_updated_at, is_deleted, deleted_at, delete_pending, source,"
                          " local_updated_at FROM rfis WHERE procore_id = %s", (rfi_id,))
    names = [column.name for column in cursor.description or []]
    found = cursor.fetchone()
    assert found is not None
    return dict(zip(names, found, strict=True))


def _hash(record: FetchedRecord) -> str:
    return payload_hash(record.payload)


# --- outcomes ---

def test_a_new_record_is_inserted_with_one_version_and_one_log_row(conn: psycopg.Connection[Any]) -> None:
    record = _rfi(1)
    assert _upsert(conn, record) == [Outcome.INSERTED]
    row = _row(conn)
    assert (row["subject"], row["payload_hash"], row["fetched_at"], row["source"]) == \
        ("Beam size", _hash(record), T0, "api")
    assert row["procore_updated_at"] == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    assert _versions(conn) == [(1, "Beam size", _hash(record))]
    assert _log(conn) == [("rfi", 1, PROJECT, "insert", "ok", _hash(record))]


def test_reapplying_the_same_batch_is_unchanged_and_writes_nothing(conn: psycopg.Connection[Any]) -> None:
    batch = [_rfi(1), _rfi(2, "Slab edge")]
    _upsert(conn, *batch)
    before = (_row(conn, 1), _row(conn, 2), _versions(conn), _log(conn))
    assert _upsert(conn, *batch) == [Outcome.UNCHANGED, Outcome.UNCHANGED]
    assert (_row(conn, 1), _row(conn, 2), _versions(conn), _log(conn)) == before


def test_a_newer_payload_updates_the_row_and_keeps_the_old_one_in_history(
        conn: psycopg.Connection[Any]) -> None:
    old, new = _rfi(1), _rfi(1, "Beam size W12", fetched_at=T0 + HOUR, updated_at="2026-11-01T10:30:00Z")
    _upsert(conn, old)
    assert _upsert(conn, new) == [Outcome.UPDATED]
    row = _row(conn)
    assert (row["subject"], row["payload_hash"], row["fetched_at"]) == \
        ("Beam size W12", _hash(new), T0 + HOUR)
    assert _versions(conn) == [(1, "Beam size", _hash(old)), (1, "Beam size W12", _hash(new))]
    assert _log(conn)[1:] == [("rfi", 1, PROJECT, "update", "ok", _hash(new))]


def test_a_fetch_older_than_the_stored_one_is_stale_but_joins_the_history(
        conn: psycopg.Connection[Any]) -> None:
    current, late = _rfi(1, "Current", fetched_at=T0 + HOUR), _rfi(1, "Older", fetched_at=T0)
    _upsert(conn, current)
    assert _upsert(conn, late) == [Outcome.STALE]
    assert _row(conn)["subject"] == "Current"
    assert _row(conn)["fetched_at"] == T0 + HOUR
    assert _versions(conn) == [(1, "Current", _hash(current)), (1, "Older", _hash(late))]
    assert _log(conn)[1:] == [("rfi", 1, PROJECT, "stale", "skipped", _hash(late))]
    assert _upsert(conn, late) == [Outcome.STALE]  # again: history already has it
    assert len(_versions(conn)) == 2


def test_a_fresher_fetch_with_an_older_updated_at_is_a_logged_conflict_that_procore_wins(
        conn: psycopg.Connection[Any]) -> None:
    stored = _rfi(1, "Stored", updated_at="2026-11-01T09:30:00Z")
    fetched = _rfi(1, "Rolled back", fetched_at=T0 + HOUR, updated_at="2026-11-01T09:00:00Z")
    _upsert(conn, stored)
    assert _upsert(conn, fetched) == [Outcome.CONFLICT_OVERWRITTEN]
    assert _row(conn)["subject"] == "Rolled back"
    assert _log(conn)[1:] == [("rfi", 1, PROJECT, "conflict", "overwritten", _hash(fetched))]
    detail = conn.execute("SELECT detail FROM sync_log WHERE action = 'conflict'").fetchone()
    assert detail is not None
    assert (detail[0]["previous_hash"], detail[0]["stored_updated_at"], detail[0]["fetched_updated_at"]) \
        == (_hash(stored), "2026-11-01T09:30:00+00:00", "2026-11-01T09:00:00+00:00")


def test_on_a_tie_of_fetch_times_the_newer_updated_at_wins(conn: psycopg.Connection[Any]) -> None:
    newer = _rfi(1, "Newer", updated_at="2026-11-01T09:30:00Z")
    older = _rfi(1, "Older", updated_at="2026-11-01T09:00:00Z")
    _upsert(conn, newer)
    assert _upsert(conn, older) == [Outcome.STALE]
    assert _row(conn)["subject"] == "Newer"


def test_a_soft_deleted_record_that_reappears_is_restored(conn: psycopg.Connection[Any]) -> None:
    record = _rfi(1)
    _upsert(conn, record)
    assert deletes.mark_deleted(conn, "rfi", PROJECT, 1, T0 + HOUR) is True
    conn.commit()
    assert _upsert(conn, _rfi(1, fetched_at=T0 + 2 * HOUR)) == [Outcome.RESTORED]
    row = _row(conn)
    assert (row["is_deleted"], row["deleted_at"], row["fetched_at"]) == (False, None, T0 + 2 * HOUR)
    assert [entry[3] for entry in _log(conn)] == ["insert", "soft_delete", "restore"]
    assert len(_versions(conn)) == 1


def test_a_fetch_from_before_the_delete_does_not_restore(conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, _rfi(1))
    deletes.mark_deleted(conn, "rfi", PROJECT, 1, T0 + 2 * HOUR)
    conn.commit()
    late = _rfi(1, "Edited before the delete", fetched_at=T0 + HOUR)
    assert _upsert(conn, late) == [Outcome.STALE]
    assert _row(conn)["is_deleted"] is True
    assert _versions(conn)[-1] == (1, "Edited before the delete", _hash(late))


def test_a_newer_fetch_of_the_same_payload_stops_an_older_fetch_arriving_later(
        conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, _rfi(1, "A"))
    assert _upsert(conn, _rfi(1, "A", fetched_at=T0 + 2 * HOUR)) == [Outcome.UNCHANGED]
    assert _row(conn)["fetched_at"] == T0 + 2 * HOUR
    assert _upsert(conn, _rfi(1, "B", fetched_at=T0 + HOUR)) == [Outcome.STALE]  # a redelivered page
    assert _row(conn)["subject"] == "A"
    assert [entry[3] for entry in _log(conn)] == ["insert", "stale"]


def test_a_fetch_that_finds_the_record_answers_a_pending_delete(conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, _rfi(1))
    assert deletes.mark_delete_pending(conn, "rfi", PROJECT, 1) is True
    conn.commit()
    assert _row(conn)["delete_pending"] is True
    assert _upsert(conn, _rfi(1, fetched_at=T0 + HOUR)) == [Outcome.UNCHANGED]
    assert _row(conn)["delete_pending"] is False
    assert [entry[3] for entry in _log(conn)] == ["insert", "delete_pending", "delete_cancelled"]


def test_the_same_record_twice_in_one_batch_is_applied_in_order(conn: psycopg.Connection[Any]) -> None:
    first, second = _rfi(1, "First"), _rfi(1, "Second", fetched_at=T0 + HOUR)
    assert _upsert(conn, first, _rfi(2), second, first) == [
        Outcome.INSERTED, Outcome.INSERTED, Outcome.UPDATED, Outcome.STALE]
    assert _row(conn)["subject"] == "Second"


def test_records_of_several_tables_in_one_batch_land_in_their_tables(conn: psycopg.Connection[Any]) -> None:
    project = FetchedRecord("project", PROJECT, None, {"id": PROJECT, "name": "Tower"}, T0)
    user = FetchedRecord("project_user", 5, PROJECT, {"id": 5}, T0)
    same_user_elsewhere = FetchedRecord("project_user", 5, 8, {"id": 5}, T0)
    assert _upsert(conn, _rfi(1), project, user, same_user_elsewhere) == [Outcome.INSERTED] * 4
    assert conn.execute("SELECT entity_type, kind, procore_id, project_id FROM replica_records"
                        " ORDER BY 1, 4").fetchall() == [
        ("contacts", "project_user", 5, PROJECT), ("contacts", "project_user", 5, 8),
        ("projects", "project", PROJECT, None), ("rfis", "rfi", 1, PROJECT)]


def test_a_record_without_updated_at_is_stored_without_one(conn: psycopg.Connection[Any]) -> None:
    assert _upsert(conn, _rfi(1, updated_at=None)) == [Outcome.INSERTED]
    assert _row(conn)["procore_updated_at"] is None
    assert _upsert(conn, _rfi(1, "Later", updated_at=None, fetched_at=T0 + HOUR)) == [Outcome.UPDATED]


# --- bad input ---

def _bad(**changes: Any) -> FetchedRecord:
    fields: dict[str, Any] = {"kind": "rfi", "procore_id": 9, "project_id": PROJECT,
                              "payload": {"id": 9}, "fetched_at": T0, "source": "api", **changes}
    return FetchedRecord(**fields)


@pytest.mark.parametrize(("record", "message"), [
    pytest.param(_bad(kind="punch_item"), "unknown kind 'punch_item'", id="unknown kind"),
    pytest.param(_bad(payload={"subject": "x"}), "payload has no id", id="payload without id"),
    pytest.param(_bad(payload={"id": 10}), "payload id 10 is not the record's id", id="other id"),
    pytest.param(_bad(payload=[9]), "not a JSON object", id="payload not an object"),
    pytest.param(_bad(payload={"id": 9, "updated_at": "yesterday"}), "not an ISO 8601", id="bad time"),
    pytest.param(_bad(payload={"id": 9, "x": {1, 2}}), "record 1 \\(rfi 9\\)", id="not JSON"),
    pytest.param(_bad(payload={"id": 9, "x": "a\x00b"}), "U\\+0000", id="NUL character"),
    pytest.param(_bad(fetched_at=datetime(2026, 11, 1)), "timezone-aware", id="naive fetched_at"),
    pytest.param(_bad(source="email"), "source 'email'", id="unknown source"),
    pytest.param(_bad(project_id=None), "belongs to a project", id="project kind without project"),
    pytest.param(_bad(kind="vendor"), "company-level", id="company kind with project"),
])
def test_a_bad_record_is_rejected_and_nothing_of_its_batch_is_written(
        conn: psycopg.Connection[Any], record: FetchedRecord, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        upsert_records(conn, [_rfi(1), record])
    conn.commit()
    counts = conn.execute("SELECT (SELECT count(*) FROM replica_records),"
                          " (SELECT count(*) FROM record_versions), (SELECT count(*) FROM sync_log)")
    assert counts.fetchone() == (0, 0, 0)


# --- deletes ---

def _live_ids(conn: psycopg.Connection[Any]) -> list[int]:
    return [row[0] for row in conn.execute("SELECT procore_id FROM live.rfis ORDER BY 1")]


def test_reconciliation_soft_deletes_rows_the_listing_did_not_show(conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, *[_rfi(i) for i in range(1, 21)])
    result = deletes.soft_delete_missing(conn, "rfi", PROJECT, set(range(1, 21)) - {4, 9},
                                         max_ratio=0.10, at=T0 + HOUR)
    conn.commit()
    assert result == deletes.DeleteResult(live=20, would_delete=2, deleted=2, guard_tripped=False)
    assert _live_ids(conn) == [i for i in range(1, 21) if i not in (4, 9)]
    assert conn.execute("SELECT count(*) FROM rfis").fetchone() == (20,)  # soft, never hard
    assert [entry[1:5] for entry in _log(conn)[20:]] == [
        (4, PROJECT, "soft_delete", "ok"), (9, PROJECT, "soft_delete", "ok")]


@pytest.mark.parametrize(("live", "seen", "tripped"), [
    pytest.param(20, 17, True, id="3 of 20 is over 10%"),
    pytest.param(20, 0, True, id="an empty listing"),
    pytest.param(3, 1, True, id="2 of 3"),
    pytest.param(3, 2, False, id="1 of 3: a single delete is always allowed"),
    pytest.param(1, 0, False, id="the only record"),
])
def test_the_mass_delete_guard_deletes_nothing_when_it_trips(
        conn: psycopg.Connection[Any], live: int, seen: int, tripped: bool) -> None:
    _upsert(conn, *[_rfi(i) for i in range(1, live + 1)])
    result = deletes.soft_delete_missing(conn, "rfi", PROJECT, range(1, seen + 1), max_ratio=0.10,
                                         at=T0 + HOUR)
    conn.commit()
    assert (result.guard_tripped, result.would_delete, result.live) == (tripped, live - seen, live)
    assert len(_live_ids(conn)) == (live if tripped else seen)
    refusals = conn.execute("SELECT count(*) FROM sync_log WHERE result = 'refused_mass_delete'")
    assert refusals.fetchone() == (int(tripped),)
    pending = conn.execute("SELECT count(*) FROM rfis WHERE delete_pending").fetchone()
    assert pending == ((live - seen) if tripped else 0,) and result.held == pending[0]


def test_rows_a_tripped_guard_held_are_deleted_by_the_next_listing_that_still_misses_them(
        conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, *[_rfi(i) for i in range(1, 11)])
    first = deletes.soft_delete_missing(conn, "rfi", PROJECT, range(1, 9), max_ratio=0.10, at=T0 + HOUR)
    assert (first.guard_tripped, first.deleted, first.held) == (True, 0, 2)
    # rfi 9 reappears in the next listing (it was never gone); rfi 10 is missing again
    second = deletes.soft_delete_missing(conn, "rfi", PROJECT, range(1, 10), max_ratio=0.10,
                                         at=T0 + 2 * HOUR)
    conn.commit()
    assert second == deletes.DeleteResult(live=10, would_delete=1, deleted=1, guard_tripped=False)
    assert _live_ids(conn) == list(range(1, 10))
    reasons = conn.execute("SELECT procore_id, detail->>'reason' FROM sync_log WHERE action = 'soft_delete'"
                           " AND result = 'ok'").fetchall()
    assert reasons == [(10, "missing_from_listing")]


def test_a_second_listing_confirms_held_rows_even_while_fresh_ones_trip_the_guard_again(
        conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, *[_rfi(i) for i in range(1, 21)])
    deletes.soft_delete_missing(conn, "rfi", PROJECT, range(1, 18), max_ratio=0.10, at=T0 + HOUR)
    # 18..20 held; now 15..17 go missing too: those three are new and held, the held ones go
    second = deletes.soft_delete_missing(conn, "rfi", PROJECT, range(1, 15), max_ratio=0.10,
                                         at=T0 + 2 * HOUR)
    conn.commit()
    assert (second.guard_tripped, second.deleted, second.held) == (True, 3, 3)
    assert _live_ids(conn) == list(range(1, 18))
    pending = [r[0] for r in conn.execute("SELECT procore_id FROM rfis WHERE delete_pending ORDER BY 1")]
    assert pending == [15, 16, 17]


def test_a_held_row_seen_alive_again_is_no_longer_pending(conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, *[_rfi(i) for i in range(1, 11)])
    deletes.soft_delete_missing(conn, "rfi", PROJECT, range(1, 9), max_ratio=0.10, at=T0 + HOUR)
    _upsert(conn, _rfi(9, fetched_at=T0 + 2 * HOUR), _rfi(10, fetched_at=T0 + 2 * HOUR))
    deletes.soft_delete_missing(conn, "rfi", PROJECT, range(1, 9), max_ratio=0.10, at=T0 + HOUR + HOUR / 2)
    conn.commit()
    assert _live_ids(conn) == list(range(1, 11))
    assert conn.execute("SELECT count(*) FROM rfis WHERE delete_pending").fetchone() == (0,)


def test_reconciliation_spares_rows_fetched_after_its_listing(conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, _rfi(1), _rfi(2, fetched_at=T0 + 2 * HOUR))
    result = deletes.soft_delete_missing(conn, "rfi", PROJECT, [], max_ratio=1.0, at=T0 + HOUR)
    conn.commit()
    assert (result.deleted, _live_ids(conn)) == (1, [2])


def test_reconciliation_touches_only_its_kind_and_project(conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, _rfi(1), _rfi(2, project_id=8))
    deletes.soft_delete_missing(conn, "rfi", 8, [], max_ratio=1.0, at=T0 + HOUR)
    conn.commit()
    assert _live_ids(conn) == [1]


def test_a_delete_signal_older_than_a_fetch_that_saw_the_record_is_ignored(
        conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, _rfi(1, fetched_at=T0 + 2 * HOUR))
    assert deletes.mark_deleted(conn, "rfi", PROJECT, 1, T0 + HOUR) is False
    assert deletes.mark_deleted(conn, "rfi", PROJECT, 404, T0 + HOUR) is False
    conn.commit()
    assert _row(conn)["is_deleted"] is False
    assert deletes.mark_deleted(conn, "rfi", PROJECT, 1, T0 + 3 * HOUR) is True
    assert deletes.mark_deleted(conn, "rfi", PROJECT, 1, T0 + 3 * HOUR) is False  # already deleted
    conn.commit()
    assert (_row(conn)["is_deleted"], _row(conn)["deleted_at"]) == (True, T0 + 3 * HOUR)


# --- cursors ---

def test_the_cursor_never_moves_backwards(conn: psycopg.Connection[Any]) -> None:
    assert cursors.read_cursor(conn, "rfi", PROJECT) is None
    assert cursors.advance_cursor(conn, "rfi", PROJECT, T0 + HOUR) == T0 + HOUR
    assert cursors.advance_cursor(conn, "rfi", PROJECT, T0) == T0 + HOUR
    assert cursors.advance_cursor(conn, "project", None, T0) == T0
    assert cursors.advance_cursor(conn, "rfi", 8, T0) == T0
    conn.commit()
    assert cursors.read_cursor(conn, "rfi", PROJECT) == T0 + HOUR
    assert cursors.advance_cursor(conn, "rfi", PROJECT, T0 + 2 * HOUR) == T0 + 2 * HOUR
    assert conn.execute("SELECT count(*) FROM sync_cursors").fetchone() == (3,)


# --- concurrency ---

def _wait_for_a_blocked_backend(conn: psycopg.Connection[Any], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                           " AND datname = current_database()").fetchone()
        if row and row[0]:
            return
        time.sleep(0.02)
    raise AssertionError("the second differ never waited for the first")


def test_a_differ_waits_for_one_holding_the_row_and_decides_on_what_it_committed(
        database_url: str, conn: psycopg.Connection[Any]) -> None:
    _upsert(conn, _rfi(1, "Old"))
    assert upsert_records(conn, [_rfi(1, "Newest", fetched_at=T0 + 2 * HOUR)]) == [Outcome.UPDATED]
    outcomes: list[Outcome] = []

    def second_differ() -> None:
        with psycopg.connect(database_url) as other:
            outcomes.extend(upsert_records(other, [_rfi(1, "Middle", fetched_at=T0 + HOUR)]))
            other.commit()

    thread = threading.Thread(target=second_differ)
    thread.start()
    with psycopg.connect(database_url, autocommit=True) as observer:
        _wait_for_a_blocked_backend(observer)
    conn.commit()
    thread.join(timeout=30)
    assert outcomes == [Outcome.STALE]
    assert _row(conn)["subject"] == "Newest"


def test_concurrent_differs_on_the_same_rows_converge_on_the_latest_fetch(database_url: str) -> None:
    """Four differs apply overlapping pages of different ages in random orders: no deadlock,
    every row ends with its latest fetch, every payload is in history, and each row's log is
    one chain (a differ that decided from a row another had changed would break it)."""
    ids = range(1, 201)
    ages = [T0 + i * HOUR for i in range(10)]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def differ(worker: int) -> None:
        shuffled = random.Random(worker)
        try:
            with psycopg.connect(database_url) as connection:
                start.wait()
                for fetched_at in shuffled.sample(ages, len(ages)):
                    page = [_rfi(i, f"v{fetched_at.hour}", fetched_at=fetched_at) for i in ids]
                    upsert_records(connection, shuffled.sample(page, len(page)))
                    connection.commit()
        except BaseException as exc:  # asserted below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=differ, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT DISTINCT payload->>'subject', fetched_at FROM rfis").fetchall()
        versions = connection.execute("SELECT count(*) FROM record_versions").fetchone()
        changes = connection.execute(
            "SELECT procore_id, payload_hash, detail->>'previous_hash' FROM sync_log"
            " WHERE action IN ('insert', 'update') ORDER BY id").fetchall()
        final = dict(connection.execute("SELECT procore_id, payload_hash FROM rfis").fetchall())
    assert rows == [(f"v{ages[-1].hour}", ages[-1])]
    assert versions == (len(ids) * len(ages),)
    chains: dict[int, str | None] = {}
    for procore_id, digest, previous in changes:
        assert chains.get(procore_id) == previous, f"rfi {procore_id}: a change from a stale read"
        chains[procore_id] = digest
    assert chains == final


def test_a_listing_of_one_parent_deletes_only_that_parents_missing_children(
        conn: psycopg.Connection[Any]) -> None:
    drawings = [FetchedRecord("drawing", i, PROJECT, {"id": i, "drawing_area_id": 100 + i % 2}, T0, "api")
                for i in range(1, 7)]
    _upsert(conn, *drawings)
    # area 101 holds 1, 3, 5 and now lists only 1 and 5; area 100's drawings are not its business
    result = deletes.soft_delete_missing(conn, "drawing", PROJECT, [1, 5], max_ratio=0.5, at=T0 + HOUR,
                                         parent_id=101)
    conn.commit()
    assert (result.live, result.deleted) == (3, 1)
    live = [r[0] for r in conn.execute("SELECT procore_id FROM drawings WHERE NOT is_deleted ORDER BY 1")]
    assert live == [1, 2, 4, 5, 6]
    with pytest.raises(ValueError, match="not listed per parent"):
        deletes.soft_delete_missing(conn, "rfi", PROJECT, [], max_ratio=0.5, at=T0 + HOUR, parent_id=1)
