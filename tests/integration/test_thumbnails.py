"""The thumbnail stage over real Redis and PostgreSQL: PDFs and photos get a small PNG stored by
content; corrupt inputs are logged and quarantined, and the stage carries on with the next file."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pymupdf
import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.messages import StoredFileJob
from eva00.replica.filestore import FileStore
from eva00.runtime.stage import Stage, accepting
from eva00.stages.thumbnailer import Thumbnailer

INPUTS = [(keys.STREAM_THUMBNAILS, keys.GROUP_THUMBNAILERS)]


def pdf_bytes(text: str, size: tuple[float, float] = (595, 842)) -> bytes:
    document = pymupdf.open()
    page = document.new_page(width=size[0], height=size[1])
    page.insert_text((72, 72), text)
    data = bytes(document.tobytes())
    document.close()
    return data


def png_bytes(width: int, height: int) -> bytes:
    pixmap = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, width, height), False)
    pixmap.clear_with(200)
    return bytes(pixmap.tobytes("png"))


def put(store: FileStore, pool: ConnectionPool, client: redis.Redis, stream: str, data: bytes,
        content_type: str) -> str:
    """A file as the downloader leaves it: stored, a files row, a job for the stage."""
    temp, handle = store.open_temp()
    with handle:
        handle.write(data)
    sha256 = hashlib.sha256(data).hexdigest()
    stored = store.commit_hashed(temp, sha256, len(data))
    with pool.connection() as conn:
        conn.execute("INSERT INTO files (sha256, size_bytes, content_type, storage_path)"
                     " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                     (sha256, len(data), content_type, str(stored.path)))
    job = StoredFileJob(sha256=sha256, content_type=content_type, size_bytes=len(data))
    client.xadd(stream, job.to_fields())  # type: ignore[arg-type]
    return sha256


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=2, open=True) as opened:
        yield opened


@pytest.fixture
def store(settings: Settings) -> FileStore:
    return FileStore(settings.data_dir)


def drain(stage: Stage) -> None:
    while stage.step():
        pass


def test_pdfs_and_photos_get_stored_png_thumbnails_and_corrupt_ones_are_quarantined(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, store: FileStore,
        caplog: pytest.LogCaptureFixture) -> None:
    stage = Stage("thumbnailer", settings, redis_client, pool, INPUTS,
                  accepting(StoredFileJob)(Thumbnailer(store, max_px=128)),
                  consumer="thumbs-test")
    stream = keys.STREAM_THUMBNAILS
    corrupt_pdf = put(store, pool, redis_client, stream, b"%PDF-1.7\n" + b"\x00garbage" * 50,
                      "application/pdf")
    good_pdf = put(store, pool, redis_client, stream, pdf_bytes("Level 3 slab"), "application/pdf")
    corrupt_jpeg = put(store, pool, redis_client, stream, b"\xff\xd8\xff\xe0" + b"not a jpeg" * 30,
                       "image/jpeg")
    good_png = put(store, pool, redis_client, stream, png_bytes(1200, 300), "image/png")
    with caplog.at_level(logging.WARNING, logger="eva00.stages.thumbnailer"):
        drain(stage)
    assert stage.stats.dead_lettered == 0 and stage.stats.failed == 0
    with pool.connection() as conn:
        thumbs: dict[str, str] = dict(
            conn.execute("SELECT source_sha256, thumbnail_sha256 FROM thumbnails").fetchall())
        quarantined = conn.execute("SELECT sha256 FROM file_quarantine WHERE stage = 'thumbnails'").fetchall()
        types: dict[str, str] = dict(conn.execute("SELECT sha256, content_type FROM files").fetchall())
    assert set(thumbs) == {good_pdf, good_png}
    assert {sha for (sha,) in quarantined} == {corrupt_pdf, corrupt_jpeg}
    assert sum(sha in caplog.text for sha in (corrupt_pdf, corrupt_jpeg)) == 2
    for thumb in thumbs.values():
        assert types[thumb] == "image/png"
        with pymupdf.open(store.path_for(thumb), filetype="png") as image:
            assert max(image[0].rect.width, image[0].rect.height) <= 128 * 1.01
    with pymupdf.open(store.path_for(thumbs[good_png]), filetype="png") as image:
        assert image[0].rect.width > 3 * image[0].rect.height  # the aspect ratio survives


def test_a_redelivered_job_renders_nothing_twice(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, store: FileStore) -> None:
    stage = Stage("thumbnailer", settings, redis_client, pool, INPUTS,
                  accepting(StoredFileJob)(Thumbnailer(store)),
                  consumer="thumbs-test")
    data = pdf_bytes("Door schedule")
    put(store, pool, redis_client, keys.STREAM_THUMBNAILS, data, "application/pdf")
    put(store, pool, redis_client, keys.STREAM_THUMBNAILS, data, "application/pdf")
    drain(stage)
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM thumbnails").fetchone() == (1,)
    assert len([p for p in Path(store.root).rglob("*") if p.is_file()]) == 2  # the source and one PNG
