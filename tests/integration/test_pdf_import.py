"""`eva00 import rfi-log | submittal-log` against real PostgreSQL: exact rows, one transaction per
file, idempotent re-import, nothing written for bad input, and the API winning over imports."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from eva00 import replica
from eva00.cli import pdf_import as cli
from eva00.config import Settings
from eva00.messages import PageMessage, PollMode
from eva00.pdf_import import store
from eva00.pdf_import.ids import assign_ids
from eva00.pdf_import.merge import adopt_imported
from eva00.stages.differ import Differ
from tests import pdf_fixtures as fx

PROJECT = 1001
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def run(settings: Settings, *argv: str | Path | int) -> int:
    return cli.main([str(a) for a in argv], cli.Environment(settings, now=lambda: NOW))


def rows(conn: psycopg.Connection[Any], table: str = "rfis") -> list[tuple[Any, ...]]:
    return conn.execute(f"SELECT procore_id, number, source, is_deleted, payload FROM {table}"
                        " ORDER BY payload->>'_page', (payload->>'full_number')").fetchall()


def count(conn: psycopg.Connection[Any], sql: str, *params: Any) -> int:
    return int(one(conn, sql, *params)[0])


def one(conn: psycopg.Connection[Any], sql: str, *params: Any) -> tuple[Any, ...]:
    row = conn.execute(sql, params).fetchone()
    assert row is not None, sql
    return tuple(row)


def test_an_rfi_log_import_writes_exactly_its_records(settings: Settings, conn: psycopg.Connection[Any],
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    written = fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(45, drafts=2, qa=True), qa=True)
    assert run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT) == 0
    stored = conn.execute("SELECT procore_id, project_id, source, payload FROM rfis").fetchall()
    assert len(stored) == 45
    ids = assign_ids("rfi", PROJECT, written.records)
    by_id = {row[0]: row for row in stored}
    for record, procore_id in zip(written.records, ids, strict=True):
        _, project_id, source, payload = by_id[procore_id]
        assert procore_id < 0 and project_id == PROJECT and source == "pdf_import"
        assert payload == {**record, "id": procore_id, "_source": "pdf_import", "_file": "rfis.pdf"}
    assert count(conn, "SELECT count(*) FROM record_versions WHERE source = 'pdf_import'") == 45
    assert "45 records from" in capsys.readouterr().err


def test_importing_the_same_file_again_changes_nothing(settings: Settings, conn: psycopg.Connection[Any],
                                                       tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(30, drafts=2))
    assert run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT) == 0
    before = (rows(conn), count(conn, "SELECT count(*) FROM record_versions"),
              count(conn, "SELECT count(*) FROM sync_log"))
    assert run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT) == 0
    after = (rows(conn), count(conn, "SELECT count(*) FROM record_versions"),
             count(conn, "SELECT count(*) FROM sync_log"))
    assert after == before
    assert "30 unchanged" in capsys.readouterr().err


def test_a_submittal_log_with_spec_section_numbers_imports_every_row(
        settings: Settings, conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    written = fx.write_submittal_log(tmp_path / "subs.pdf", fx.make_submittals(40, drafts=1),
                                     spec_prefix=True, order="dmy")
    assert run(settings, "submittal-log", tmp_path / "subs.pdf", "--project", PROJECT) == 0
    numbers = sorted(r[1] or "" for r in rows(conn, "submittals"))
    assert numbers == sorted(r["number"] or "" for r in written.records)
    assert count(conn, "SELECT count(*) FROM submittals"
                       " WHERE payload->>'spec_section_number' IS NOT NULL") == 39


@pytest.mark.parametrize("bad", ["encrypted", "image-only", "letter", "empty", "wrong-kind"])
def test_bad_input_prints_one_line_exits_non_zero_and_writes_nothing(
        settings: Settings, conn: psycopg.Connection[Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], bad: str) -> None:
    path = tmp_path / f"{bad}.pdf"
    {"encrypted": fx.write_encrypted, "image-only": fx.write_image_only, "letter": fx.write_letter,
     "empty": lambda p: p.write_bytes(b""),
     "wrong-kind": lambda p: fx.write_submittal_log(p, fx.make_submittals(3))}[bad](path)
    assert run(settings, "rfi-log", path, "--project", PROJECT) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"eva00 import: {path}: ") and err.count("\n") == 1
    assert count(conn, "SELECT count(*) FROM rfis") == 0 and count(conn, "SELECT count(*) FROM sync_log") == 0


def test_a_dry_run_parses_and_prints_json_but_writes_nothing(
        settings: Settings, conn: psycopg.Connection[Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    written = fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(12))
    assert run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT, "--dry-run", "--json") == 0
    out = capsys.readouterr()
    assert orjson.loads(out.out)["records"] == written.records
    assert "dry run, nothing written" in out.err
    assert count(conn, "SELECT count(*) FROM rfis") == 0


def test_a_file_is_written_in_one_transaction(settings: Settings, conn: psycopg.Connection[Any],
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = replica.upsert_records

    def write_then_fail(connection: psycopg.Connection[Any], records: Any) -> Any:
        real(connection, records)
        raise RuntimeError("the database went away after the rows were written")

    monkeypatch.setattr(replica, "upsert_records", write_then_fail)
    fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(10))
    with pytest.raises(RuntimeError):
        run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT)
    assert count(conn, "SELECT count(*) FROM rfis") == 0
    assert count(conn, "SELECT count(*) FROM record_versions") == 0


def test_an_unreachable_database_is_its_own_exit_code(settings: Settings, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(3))
    gone = settings.replace(database_url="postgresql://eva00@127.0.0.1:9/none?connect_timeout=2")
    assert run(gone, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT) == cli.EXIT_UNAVAILABLE
    assert "PostgreSQL is not reachable" in capsys.readouterr().err


# --- the API wins ---

def api_rfi(procore_id: int, number: str, subject: str = "From the API") -> dict[str, Any]:
    return {"id": procore_id, "number": number, "subject": subject, "updated_at": "2026-11-02T10:00:00Z"}


def sync_from_api(conn: psycopg.Connection[Any], items: list[dict[str, Any]]) -> None:
    """What the differ does with an API page of RFIs: adopt imports, then upsert."""
    with conn.transaction():
        for item in items:
            adopt_imported(conn, "rfi", PROJECT, item["number"], item["id"])
        replica.upsert_records(conn, [replica.FetchedRecord("rfi", item["id"], PROJECT, item,
                                                            datetime(2026, 11, 2, 10, tzinfo=UTC))
                                      for item in items])


def live(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT procore_id, number, source FROM live.rfis ORDER BY procore_id").fetchall()


def test_the_api_record_wins_and_the_import_stays_in_history(settings: Settings,
                                                             conn: psycopg.Connection[Any],
                                                             tmp_path: Path) -> None:
    fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(3, prefix=""))
    assert run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT) == 0
    [imported_id] = one(conn, "SELECT procore_id FROM rfis WHERE number = '2'")
    sync_from_api(conn, [api_rfi(555002, "2")])
    assert sorted((n, s) for _, n, s in live(conn)) == [
        ("1", "pdf_import"), ("2", "api"), ("3", "pdf_import")]
    assert conn.execute("SELECT is_deleted, deleted_at IS NOT NULL FROM rfis WHERE procore_id = %s",
                        (imported_id,)).fetchone() == (True, True)
    history = conn.execute("SELECT payload->>'_source' FROM record_versions WHERE procore_id = %s",
                           (imported_id,)).fetchall()
    assert history == [("pdf_import",)]
    log = conn.execute("SELECT detail FROM sync_log WHERE action = 'superseded_by_api'").fetchall()
    assert [(d["procore_id"], d["number"]) for (d,) in log] == [(555002, "2")]


def test_numbers_match_across_prefixes_and_leading_zeros(settings: Settings, conn: psycopg.Connection[Any],
                                                         tmp_path: Path) -> None:
    fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(3, prefix="RFI-"))  # RFI-001 .. RFI-003
    assert run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT) == 0
    sync_from_api(conn, [api_rfi(9001, "1"), api_rfi(9003, "RFI-003")])
    assert [(i, s) for i, _, s in live(conn)][-2:] == [(9001, "api"), (9003, "api")]
    assert len(live(conn)) == 3


def test_a_reimport_after_the_api_synced_an_item_leaves_the_api_row_alone(
        settings: Settings, conn: psycopg.Connection[Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(4, prefix=""))
    assert run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT) == 0
    sync_from_api(conn, [api_rfi(7001, "1"), api_rfi(7002, "2")])
    before = live(conn)
    assert run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT) == 0
    assert live(conn) == before and len(before) == 4
    assert "2 already synced from the API" in capsys.readouterr().err


def test_an_item_superseded_by_the_api_is_not_brought_back_once_the_api_row_is_gone(
        settings: Settings, conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    fx.write_rfi_log(tmp_path / "rfis.pdf", fx.make_rfis(2, prefix=""))
    assert run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT) == 0
    sync_from_api(conn, [api_rfi(8001, "1")])
    with conn.transaction():
        replica.mark_deleted(conn, "rfi", PROJECT, 8001, datetime(2026, 11, 3, tzinfo=UTC))
    assert run(settings, "rfi-log", tmp_path / "rfis.pdf", "--project", PROJECT) == 0
    assert [n for _, n, _ in live(conn)] == ["2"]


def test_the_differ_adopts_imports_when_it_stores_an_api_page(settings: Settings,
                                                              conn: psycopg.Connection[Any],
                                                              tmp_path: Path) -> None:
    fx.write_submittal_log(tmp_path / "subs.pdf", fx.make_submittals(3))
    assert run(settings, "submittal-log", tmp_path / "subs.pdf", "--project", PROJECT) == 0
    [number] = one(conn, "SELECT number FROM submittals ORDER BY number LIMIT 1")
    page = PageMessage(poll_id="p1", kind="submittal", project_id=PROJECT, mode=PollMode.INCREMENTAL,
                       page=1, fetched_at="2026-11-02T10:00:00Z", is_last=True, pages_total=1,
                       items=[{"id": 4242, "number": number, "title": "API title",
                               "updated_at": "2026-11-02T09:00:00Z"}])
    with conn.transaction():
        Differ(mass_delete_ratio=0.1).handle(conn, page)
    live_rows = conn.execute("SELECT procore_id, source FROM live.submittals WHERE number = %s",
                             (number,)).fetchall()
    assert live_rows == [(4242, "api")]
    assert count(conn, "SELECT count(*) FROM live.submittals") == 3


def test_adopting_touches_only_imported_rows_of_the_same_project_and_kind(
        conn: psycopg.Connection[Any]) -> None:
    parsed = {"kind": "rfi", "file": "x.pdf",
              "records": [{"number": "5", "full_number": "5", "subject": "s", "_page": 1}]}
    with conn.transaction():
        store.import_log(conn, parsed, PROJECT, NOW)
        store.import_log(conn, parsed, PROJECT + 1, NOW)
    with conn.transaction():
        assert adopt_imported(conn, "rfi", PROJECT + 2, "5", 1) is False
        assert adopt_imported(conn, "submittal", PROJECT, "5", 1) is False
        assert adopt_imported(conn, "rfi", PROJECT, "5", 1) is True
        assert adopt_imported(conn, "rfi", PROJECT, "5", 1) is False  # already superseded
    assert count(conn, "SELECT count(*) FROM live.rfis") == 1
