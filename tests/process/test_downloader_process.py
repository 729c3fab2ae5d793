"""The real downloader program (processes/downloader.py) against the simulator: kill -9 in the
middle of a large file, restart, and the download resumes with a Range request for exactly the
missing bytes; SIGTERM then exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis

from eva00 import keys
from eva00.messages import FileJob, StoredFileJob
from eva00.replica.filestore import FileStore
from eva00.simulator.testing import SimHandle
from eva00.stages.downloader import DOWNLOAD_INPUTS

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
SIZE_BYTES = 256 * 1024 * 1024


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.005)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_a_download_killed_midway_resumes_with_a_range_request_after_restart(
        sim_factory: Callable[..., SimHandle], database_url: str, redis_url: str, tmp_path: Path) -> None:
    sim = sim_factory()
    made = sim.new_file(SIZE_BYTES, "pdf")
    with psycopg.connect(database_url) as conn:
        row = conn.execute("INSERT INTO record_files (kind, procore_id, project_id, url_field, source_url)"
                           " VALUES ('drawing_revision', 5, 10, 'pdf_url', %s) RETURNING id",
                           (made["url"],)).fetchone()
    assert row is not None
    link = row[0]
    job = FileJob(kind="drawing_revision", procore_id=5, project_id=10, url_field="pdf_url", url=made["url"],
                  priority=3)
    redis.Redis.from_url(redis_url).xadd(keys.file_stream(job.priority), job.to_fields())  # type: ignore[arg-type]
    data_dir = tmp_path / "data"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "EVA00_DATA_DIR": str(data_dir), "EVA00_VAR_DIR": str(tmp_path / "var"),
           "PROCORE_API_BASE": sim.api_base, "PROCORE_LOGIN_BASE": sim.login_base,
           "EVA00_ALLOW_LOOPBACK_URLS": "1",
           "PROCORE_CLIENT_ID": sim.client_id, "PROCORE_CLIENT_SECRET": sim.client_secret,
           "PROCORE_COMPANY_ID": str(sim.company_id), "SUPERVISOR_PROCESS_NAME": "downloader-1",
           "EVA00_STREAM_BLOCK_MS": "200", "EVA00_CLAIM_IDLE_MS": "60000", "EVA00_DISK_FREE_MIN_RATIO": "0.0"}
    temp = data_dir / "tmp" / f"dl-rf{link}"
    logs: list[Path] = []

    def start() -> subprocess.Popen[bytes]:
        log = tmp_path / f"downloader-{len(logs)}.log"
        logs.append(log)
        with log.open("wb") as out:
            return subprocess.Popen([sys.executable, "processes/downloader.py"], cwd=ROOT, env=env,
                                    stdout=out, stderr=subprocess.STDOUT)

    def status() -> str:
        with psycopg.connect(database_url) as conn:
            found = conn.execute("SELECT status FROM record_files WHERE id = %s", (link,)).fetchone()
        return str(found[0]) if found else ""

    first = start()
    try:
        _wait_for(lambda: _size(temp) > 16 * 1024 * 1024 or first.poll() is not None, 60, "bytes on disk")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    kept = _size(temp)
    assert 0 < kept < SIZE_BYTES and status() == "pending", "the download finished before the kill"
    second = start()
    try:
        _wait_for(lambda: status() != "pending" or second.poll() is not None, 120, "the download")
        assert status() == "downloaded", logs[-1].read_text()[-3000:]
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    finally:
        second.kill()
    storage = [(e["status"], e["bytes"]) for e in sim.ledger()
               if e["host"] == "storage" and e["path"].endswith(f"/{made['file_id']}")]
    assert storage[-1] == (206, SIZE_BYTES - kept), storage
    client = redis.Redis.from_url(redis_url)
    for stream, group in DOWNLOAD_INPUTS:
        assert client.xpending(stream, group)["pending"] == 0, f"{stream} left pending after SIGTERM"
    truth = sim._call("GET", f"/_sim/files/{made['file_id']}")["sha256"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT sha256 FROM record_files WHERE id = %s", (link,)).fetchone() == (truth,)
    assert sim.stats()["token_leaks"] == 0


def test_the_thumbnail_and_text_programs_process_a_stored_pdf_and_stop_on_sigterm(
        database_url: str, redis_url: str, tmp_path: Path) -> None:
    import pymupdf

    document = pymupdf.open()
    document.new_page().insert_text((72, 72), "Fire damper inspection")
    data = bytes(document.tobytes())
    store = FileStore(tmp_path / "data")
    temp, handle = store.open_temp()
    with handle:
        handle.write(data)
    stored = store.commit(temp)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO files (sha256, size_bytes, content_type, storage_path)"
                     " VALUES (%s, %s, 'application/pdf', 'x')", (stored.sha256, stored.size_bytes))
    job = StoredFileJob(sha256=stored.sha256, content_type="application/pdf", size_bytes=stored.size_bytes)
    client = redis.Redis.from_url(redis_url)
    for stream in (keys.STREAM_THUMBNAILS, keys.STREAM_TEXT):
        client.xadd(stream, job.to_fields())  # type: ignore[arg-type]
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "EVA00_DATA_DIR": str(tmp_path / "data"), "EVA00_VAR_DIR": str(tmp_path / "var"),
           "EVA00_STREAM_BLOCK_MS": "200"}
    programs = [subprocess.Popen([sys.executable, f"processes/{name}.py"], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for name in ("thumbnailer", "text_extractor")]
    try:
        def done() -> bool:
            with psycopg.connect(database_url) as conn:
                found = conn.execute("SELECT (SELECT count(*) FROM thumbnails)"
                                     " + (SELECT count(*) FROM file_texts WHERE text LIKE '%%Fire damper%%')"
                                     ).fetchone()
            return bool(found and found[0] == 2)

        _wait_for(done, 60, "a thumbnail and a text row")
        for program in programs:
            program.send_signal(signal.SIGTERM)
            assert program.wait(15) == 0
    finally:
        for program in programs:
            program.kill()
