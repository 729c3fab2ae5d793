"""The differ against real PostgreSQL: pages become rows, a cursor moves only when its whole poll
committed, reconciliation soft-deletes only after complete enumerations, and a redelivered page
forwards its downstream messages again instead of losing them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.messages import FileJob, IngestEvent, PageMessage, PollMode, decode
from eva00.runtime.stage import Stage
from eva00.stages.differ import Differ

T0 = "2026-11-01T10:00:00Z"
T1 = "2026-11-01T10:05:00Z"


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url) as connection:
        yield connection


def _rfi(rfi_id: int, subject: str = "Beam size", **extra: Any) -> dict[str, Any]:
    return {"id": rfi_id, "number": str(rfi_id), "subject": subject,
            "updated_at": "2026-11-01T09:00:00Z", **extra}


def _page(page: int, items: list[dict[str, Any]], *, poll_id: str = "p1", last: bool = False,
          total: int | None = None, complete: bool = True, mode: str = PollMode.INCREMENTAL,
          ids: list[int] | None = None, fetched_at: str = T0, kind: str = "rfi") -> PageMessage:
    return PageMessage(poll_id=poll_id, kind=kind, project_id=7, mode=mode, page=page,
                       fetched_at=fetched_at, items=items, ids=ids or [], is_last=last,
                       pages_total=total if last else None, complete=complete,
                       window_to="2026-11-01T09:59:55Z")


def _handle(conn: psycopg.Connection[Any], page: PageMessage) -> list[Any]:
    with conn.transaction():
        return Differ(mass_delete_ratio=0.10).handle(conn, page)


def _cursor(conn: psycopg.Connection[Any]) -> Any:
    row = conn.execute("SELECT cursor_at FROM sync_cursors WHERE kind = 'rfi'").fetchone()
    return row[0] if row else None


def test_a_page_of_records_becomes_rows_versions_and_ingest_events(conn: psycopg.Connection[Any]) -> None:
    out = _handle(conn, _page(1, [_rfi(1), _rfi(2)]))
    rows = conn.execute("SELECT procore_id, payload->>'subject', source FROM rfis ORDER BY 1").fetchall()
    assert rows == [(1, "Beam size", "api"), (2, "Beam size", "api")]
    assert conn.execute("SELECT count(*) FROM record_versions").fetchone() == (2,)
    assert [(s, type(m)) for s, m in out] == [(keys.STREAM_INGEST, IngestEvent)] * 2


def test_the_cursor_moves_only_when_every_page_of_the_poll_committed(
        conn: psycopg.Connection[Any]) -> None:
    _handle(conn, _page(2, [_rfi(3)], last=True, total=3))
    assert _cursor(conn) is None
    _handle(conn, _page(1, [_rfi(1), _rfi(2)]))
    assert _cursor(conn) is None
    _handle(conn, _page(3, [_rfi(4)]))
    assert _cursor(conn) is not None
    assert _cursor(conn).isoformat() == "2026-11-01T09:59:55+00:00"


def test_an_incomplete_poll_never_moves_the_cursor(conn: psycopg.Connection[Any]) -> None:
    _handle(conn, _page(1, [_rfi(1)], last=True, total=1, complete=False))
    assert _cursor(conn) is None
    assert conn.execute("SELECT count(*) FROM sync_log WHERE action = 'poll_incomplete'").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM rfis").fetchone() == (1,)


def test_a_redelivered_page_changes_nothing_but_forwards_again(conn: psycopg.Connection[Any]) -> None:
    page = _page(1, [_rfi(1, attachments=[{"id": 55, "url": "https://x.test/f/55", "name": "a.pdf"}])],
                 last=True, total=1)
    first = _handle(conn, page)
    second = _handle(conn, page)
    assert sorted(type(m).__name__ for _s, m in first) == ["FileJob", "IngestEvent"]
    assert sorted(type(m).__name__ for _s, m in second) == ["FileJob", "IngestEvent"]
    assert conn.execute("SELECT count(*) FROM rfis").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM record_files").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM sync_log WHERE action = 'insert'").fetchone() == (1,)


def test_an_unchanged_record_on_a_new_poll_forwards_nothing(conn: psycopg.Connection[Any]) -> None:
    _handle(conn, _page(1, [_rfi(1)], poll_id="a"))
    assert _handle(conn, _page(1, [_rfi(1)], poll_id="b", fetched_at=T1)) == []


def test_file_jobs_carry_the_link_and_are_not_repeated_once_downloaded(
        conn: psycopg.Connection[Any]) -> None:
    item = _rfi(1, attachments=[{"id": 9, "url": "https://x.test/f/9", "size": 12}])
    out = _handle(conn, _page(1, [item], poll_id="a"))
    jobs = [m for s, m in out if s in keys.STREAM_FILES_BY_PRIORITY]
    assert len(jobs) == 1 and isinstance(jobs[0], FileJob)
    assert (jobs[0].url_field, jobs[0].url, jobs[0].expected_size_bytes, jobs[0].priority) == (
        "attachments[id=9].url", "https://x.test/f/9", 12, 2)
    conn.execute("UPDATE record_files SET status = 'downloaded'")
    conn.commit()
    changed = dict(item, subject="changed")
    out = _handle(conn, _page(1, [changed], poll_id="b", fetched_at=T1))
    assert [s for s, _m in out] == [keys.STREAM_INGEST]


def test_a_link_whose_signed_url_expired_is_rearmed_when_the_record_brings_a_fresh_url(
        conn: psycopg.Connection[Any]) -> None:
    item = _rfi(1, attachments=[{"id": 9, "url": "https://x.test/f/9?sig=old", "size": 12}])
    _handle(conn, _page(1, [item], poll_id="a"))
    conn.execute("UPDATE record_files SET status = 'expired', attempts = 5, last_error = 'ran out'")
    conn.commit()
    same_url = dict(item, subject="changed")
    out = _handle(conn, _page(1, [same_url], poll_id="b", fetched_at=T1))
    assert [s for s, _m in out] == [keys.STREAM_INGEST], "the same dead URL is not tried again"
    fresh = dict(same_url, subject="again", attachments=[{"id": 9, "url": "https://x.test/f/9?sig=new",
                                                          "size": 12}])
    out = _handle(conn, _page(1, [fresh], poll_id="c", fetched_at="2026-11-01T10:10:00Z"))
    jobs = [m for s, m in out if s in keys.STREAM_FILES_BY_PRIORITY]
    assert len(jobs) == 1 and isinstance(jobs[0], FileJob) and jobs[0].url.endswith("sig=new")
    row = conn.execute("SELECT status, attempts, source_url, count(*) OVER () FROM record_files").fetchone()
    assert row == ("pending", 0, "https://x.test/f/9?sig=new", 1)


def test_reconciliation_soft_deletes_only_what_a_complete_enumeration_missed(
        conn: psycopg.Connection[Any]) -> None:
    _handle(conn, _page(1, [_rfi(i) for i in range(1, 21)], poll_id="load"))
    seen = [i for i in range(1, 21) if i != 5]
    _handle(conn, _page(1, [], poll_id="rec", mode=PollMode.RECONCILE, ids=seen[:10], fetched_at=T1))
    assert conn.execute("SELECT count(*) FROM rfis WHERE is_deleted").fetchone() == (0,)
    _handle(conn, _page(2, [], poll_id="rec", mode=PollMode.RECONCILE, ids=seen[10:], last=True,
                        total=2, fetched_at=T1))
    assert conn.execute("SELECT procore_id FROM rfis WHERE is_deleted").fetchall() == [(5,)]
    assert conn.execute("SELECT count(*) FROM live.rfis").fetchone() == (19,)


def test_an_incomplete_reconciliation_deletes_nothing(conn: psycopg.Connection[Any]) -> None:
    _handle(conn, _page(1, [_rfi(i) for i in range(1, 21)], poll_id="load"))
    _handle(conn, _page(1, [], poll_id="rec", mode=PollMode.RECONCILE, ids=[1, 2], last=True, total=1,
                        complete=False, fetched_at=T1))
    assert conn.execute("SELECT count(*) FROM rfis WHERE is_deleted").fetchone() == (0,)


def test_the_mass_delete_guard_deletes_nothing_and_raises_an_alert(conn: psycopg.Connection[Any]) -> None:
    _handle(conn, _page(1, [_rfi(i) for i in range(1, 21)], poll_id="load"))
    _handle(conn, _page(1, [], poll_id="rec", mode=PollMode.RECONCILE, ids=list(range(1, 11)),
                        last=True, total=1, fetched_at=T1))
    assert conn.execute("SELECT count(*) FROM rfis WHERE is_deleted").fetchone() == (0,)
    alert = conn.execute("SELECT alert_key, severity, status FROM alerts").fetchone()
    assert alert == ("mass-delete:rfi:7", "critical", "open")
    assert conn.execute("SELECT count(*) FROM rfis WHERE delete_pending").fetchone() == (10,)


def test_deletes_held_by_the_guard_land_with_the_next_complete_reconciliation(
        conn: psycopg.Connection[Any]) -> None:
    _handle(conn, _page(1, [_rfi(i) for i in range(1, 11)], poll_id="load"))
    _handle(conn, _page(1, [], poll_id="rec-1", mode=PollMode.RECONCILE, ids=list(range(1, 9)),
                        last=True, total=1, fetched_at=T1))
    assert conn.execute("SELECT count(*) FROM rfis WHERE is_deleted").fetchone() == (0,)
    _handle(conn, _page(1, [], poll_id="rec-2", mode=PollMode.RECONCILE, ids=list(range(1, 9)),
                        last=True, total=1, fetched_at="2026-11-01T11:05:00Z"))
    deleted = [r[0] for r in conn.execute("SELECT procore_id FROM rfis WHERE is_deleted ORDER BY 1")]
    assert deleted == [9, 10]
    refusals = conn.execute("SELECT count(*) FROM sync_log WHERE result = 'refused_mass_delete'").fetchone()
    assert refusals == (1,)


def test_a_page_fetched_before_the_stored_row_never_overwrites_it(conn: psycopg.Connection[Any]) -> None:
    _handle(conn, _page(1, [_rfi(1, subject="newer")], poll_id="late", fetched_at=T1))
    _handle(conn, _page(1, [_rfi(1, subject="older")], poll_id="early", fetched_at=T0))
    assert conn.execute("SELECT payload->>'subject' FROM rfis").fetchone() == ("newer",)
    assert conn.execute("SELECT count(*) FROM record_versions").fetchone() == (2,)


def test_a_record_without_an_id_poisons_the_page_and_writes_nothing(conn: psycopg.Connection[Any]) -> None:
    from eva00.errors import Poison

    with pytest.raises(Poison, match="without a usable id"):
        _handle(conn, _page(1, [_rfi(1), {"subject": "no id"}]))
    assert conn.execute("SELECT count(*) FROM rfis").fetchone() == (0,)


def test_a_file_job_from_the_differ_lands_directly_on_its_priority_stream(
        settings: Settings, redis_client: redis.Redis) -> None:
    page = _page(1, [_rfi(1, attachments=[{"id": 9, "url": "https://x.test/f/9", "size": 12}])])
    redis_client.xadd(keys.STREAM_PAGES, page.to_fields())  # type: ignore[arg-type]
    with ConnectionPool(settings.effective_database_url, min_size=1, max_size=2, open=True) as pool:
        differ = Stage("differ", settings, redis_client, pool, [(keys.STREAM_PAGES, keys.GROUP_DIFFERS)],
                       Differ(mass_delete_ratio=0.10), consumer="differ-test")
        differ.bus.ensure_group(keys.STREAM_PAGES, keys.GROUP_DIFFERS)
        assert differ.step() == 1
    # An RFI attachment is priority 2: no routing hop stands between the differ and the downloader.
    entries = redis_client.xrange("eva00:files:p2")
    assert len(entries) == 1 and isinstance(decode(entries[0][1]), FileJob)  # type: ignore[index]
    assert not redis_client.exists("eva00:files")
    assert sum(redis_client.xlen(s) for s in keys.STREAM_FILES_BY_PRIORITY) == 1


def test_a_page_counts_the_records_it_changed_for_the_schedulers_plan(conn: psycopg.Connection[Any]) -> None:
    _handle(conn, _page(1, [_rfi(1), _rfi(2)], poll_id="first", last=True, total=1))
    _handle(conn, _page(1, [_rfi(1), _rfi(2, subject="Column size")], poll_id="second", last=True, total=1))
    _handle(conn, _page(1, [_rfi(1), _rfi(2, subject="Column size")], poll_id="quiet", last=True, total=1))
    changed = dict(conn.execute("SELECT poll_id, changed FROM poll_pages").fetchall())
    assert changed == {"first": 2, "second": 1, "quiet": 0}
