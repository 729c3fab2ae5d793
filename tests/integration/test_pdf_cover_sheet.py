"""`eva00 import cover-sheet` end to end: allowed links become file jobs on their priority stream, refused and
expired ones are recorded (redacted), and the SSRF canary never hears a request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import redis

from eva00 import keys, messages
from eva00.cli import pdf_import as cli
from eva00.config import Settings
from eva00.messages import FileJob
from eva00.replica.records import FetchedRecord, upsert_records
from tests import pdf_fixtures as fx

PROJECT = 1001
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ROUTES: dict[str, fx.Route] = {"/ok": (206, {}), "/also-ok": (302, {"Location": "/ok?sig=second"}),
                               "/expired": (403, {}), "/gone": (404, {})}


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def storage() -> Iterator[fx.StorageServer]:
    with fx.StorageServer(ROUTES) as server:
        yield server


@pytest.fixture
def canary() -> Iterator[fx.Canary]:
    with fx.Canary() as listener:
        yield listener


def run(settings: Settings, storage: fx.StorageServer, *argv: str | Path | int) -> int:
    env = cli.Environment(settings.replace(storage_hosts=("storage.procore.com", storage.host)),
                          context=fx.storage_client_context(), now=lambda: NOW)
    return cli.main([str(a) for a in argv], env)


def file_jobs(client: redis.Redis) -> list[FileJob]:
    entries: list[tuple[bytes, dict[bytes | str, bytes | str]]] = []
    for stream in keys.STREAM_FILES_BY_PRIORITY:
        entries += client.xrange(stream)  # type: ignore[operator]
    jobs = [messages.decode(fields) for _id, fields in entries]
    return [job for job in jobs if isinstance(job, FileJob) or pytest.fail(f"not a FileJob: {job}")]


def sheet(tmp_path: Path, storage: fx.StorageServer, canary: fx.Canary) -> tuple[Path, fx.Submittal]:
    item = fx.make_submittals(1, seed=21)[0]
    links = [fx.Attachment("Mix design.pdf", storage.url("/ok?companyId=1&sig=TOPSECRET1")),
             fx.Attachment("Test report.pdf", storage.url("/also-ok?sig=TOPSECRET2")),
             fx.Attachment("Old scan.pdf", storage.url("/expired?sig=TOPSECRET3")),
             fx.Attachment("Missing.pdf", storage.url("/gone?sig=TOPSECRET4")),
             fx.Attachment("Metadata.pdf", "https://169.254.169.254/latest/meta-data/?sig=TOPSECRET5"),
             fx.Attachment("Canary.pdf", f"https://127.0.0.1:{canary.port}/steal?sig=TOPSECRET6"),
             fx.Attachment("Plain.pdf", f"http://{storage.host}/ok?sig=TOPSECRET7"),
             fx.Attachment("Local.pdf", "file:///etc/passwd")]
    path = tmp_path / "cover.pdf"
    fx.write_cover_sheet(path, item, links)
    return path, item


def test_allowed_links_are_queued_and_the_rest_recorded_without_their_signatures(
        settings: Settings, conn: psycopg.Connection[Any], redis_client: redis.Redis, tmp_path: Path,
        storage: fx.StorageServer, canary: fx.Canary, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    path, item = sheet(tmp_path, storage, canary)
    assert run(settings, storage, "cover-sheet", path, "--project", PROJECT) == 0
    [(procore_id, payload)] = conn.execute("SELECT procore_id, payload FROM submittals").fetchall()
    assert procore_id < 0 and payload["number"] == item.number and "cover_sheet" in payload
    jobs = file_jobs(redis_client)
    assert [(j.kind, j.procore_id, j.project_id, j.url_field, j.priority) for j in jobs] == [
        ("submittal", procore_id, PROJECT, "cover_sheet.attachments[id=#0].url", 1),
        ("submittal", procore_id, PROJECT, "cover_sheet.attachments[id=#1].url", 1)]
    assert [j.url for j in jobs] == [storage.url("/ok?companyId=1&sig=TOPSECRET1"),
                                     storage.url("/also-ok?sig=TOPSECRET2")]
    files = conn.execute("SELECT url_field, status FROM record_files ORDER BY url_field").fetchall()
    assert files == [("cover_sheet.attachments[id=#0].url", "pending"),
                     ("cover_sheet.attachments[id=#1].url", "pending"),
                     ("cover_sheet.attachments[id=#2].url", "expired")]
    log = conn.execute("SELECT action, detail FROM sync_log WHERE action LIKE 'link_%'"
                       " ORDER BY id").fetchall()
    assert [(a, d["name"]) for a, d in log] == [
        ("link_expired", "Old scan.pdf"), ("link_unavailable", "Missing.pdf"),
        ("link_refused", "Metadata.pdf"), ("link_refused", "Canary.pdf"), ("link_refused", "Plain.pdf"),
        ("link_refused", "Local.pdf")]
    logged = orjson.dumps([d for _, d in log]).decode() + capsys.readouterr().err + caplog.text
    assert "TOPSECRET" not in logged and logged.count("sig=REDACTED") == 10  # 5 in sync_log, 5 logged
    refused = [a for a in payload["cover_sheet"]["attachments"] if a["status"] == "refused"]
    assert len(refused) == 4 and all("url" not in a for a in refused)  # nothing may fetch them later
    assert "TOPSECRET" not in orjson.dumps(refused).decode()
    assert canary.hits == 0
    assert all("Authorization" not in headers for _, headers in storage.requests)


def test_links_of_a_submittal_the_api_already_has_attach_to_its_real_id(
        settings: Settings, conn: psycopg.Connection[Any], redis_client: redis.Redis, tmp_path: Path,
        storage: fx.StorageServer, canary: fx.Canary) -> None:
    path, item = sheet(tmp_path, storage, canary)
    api = {"id": 31337, "number": item.number, "title": "API", "updated_at": "2026-11-01T00:00:00Z"}
    with conn.transaction():
        upsert_records(conn, [FetchedRecord("submittal", 31337, PROJECT, api, NOW)])
    assert run(settings, storage, "cover-sheet", path, "--project", PROJECT) == 0
    assert {j.procore_id for j in file_jobs(redis_client)} == {31337}
    assert conn.execute("SELECT procore_id, payload FROM submittals").fetchall() == [(31337, api)]


def test_a_cover_sheet_enriches_the_row_its_log_import_created(
        settings: Settings, conn: psycopg.Connection[Any], tmp_path: Path, storage: fx.StorageServer,
        canary: fx.Canary) -> None:
    path, item = sheet(tmp_path, storage, canary)
    log = tmp_path / "log.pdf"
    fx.write_submittal_log(log, [item], spec_prefix=True)
    assert run(settings, storage, "submittal-log", log, "--project", PROJECT) == 0
    assert run(settings, storage, "cover-sheet", path, "--project", PROJECT) == 0
    assert run(settings, storage, "submittal-log", log, "--project", PROJECT) == 0
    [(payload,)] = conn.execute("SELECT payload FROM submittals").fetchall()
    assert payload["_file"] == "log.pdf" and len(payload["cover_sheet"]["attachments"]) == 8


def test_a_downloaded_link_is_not_queued_again_by_a_reimport(
        settings: Settings, conn: psycopg.Connection[Any], redis_client: redis.Redis, tmp_path: Path,
        storage: fx.StorageServer, canary: fx.Canary) -> None:
    path, _ = sheet(tmp_path, storage, canary)
    assert run(settings, storage, "cover-sheet", path, "--project", PROJECT) == 0
    conn.execute("UPDATE record_files SET status = 'downloaded' WHERE url_field LIKE '%#0%'")
    redis_client.delete(*keys.STREAM_FILES_BY_PRIORITY)
    assert run(settings, storage, "cover-sheet", path, "--project", PROJECT) == 0
    assert [j.url_field for j in file_jobs(redis_client)] == ["cover_sheet.attachments[id=#1].url"]


def test_a_dry_run_judges_links_but_writes_and_queues_nothing(
        settings: Settings, conn: psycopg.Connection[Any], redis_client: redis.Redis, tmp_path: Path,
        storage: fx.StorageServer, canary: fx.Canary, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = sheet(tmp_path, storage, canary)
    assert run(settings, storage, "cover-sheet", path, "--project", PROJECT, "--dry-run", "--json") == 0
    out = capsys.readouterr()
    statuses = [a["status"] for a in orjson.loads(out.out)["attachments"]]
    assert statuses == ["queued", "queued", "expired", "unavailable"] + ["refused"] * 4
    assert "TOPSECRET" not in out.out + out.err
    assert not any(redis_client.xlen(stream) for stream in keys.STREAM_FILES_BY_PRIORITY)
    assert conn.execute("SELECT count(*) FROM submittals").fetchone() == (0,)
    assert canary.hits == 0


def test_a_cover_sheet_that_cannot_be_read_writes_nothing(
        settings: Settings, conn: psycopg.Connection[Any], redis_client: redis.Redis, tmp_path: Path,
        storage: fx.StorageServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = fx.write_encrypted(tmp_path / "locked.pdf")
    assert run(settings, storage, "cover-sheet", path, "--project", PROJECT) == cli.EXIT_BAD_INPUT
    assert "the PDF is encrypted" in capsys.readouterr().err
    assert not any(redis_client.xlen(stream) for stream in keys.STREAM_FILES_BY_PRIORITY)
    assert conn.execute("SELECT count(*) FROM sync_log").fetchone() == (0,)
