"""Finding 6 of the security issue, replayed: PyMuPDF ran in the long-lived thumbnail and text
stages without limits (a 137 KiB PNG of 12000 x 12000 pixels took the stage to 351 MB; a costly
PDF stalled the single text extractor; a MuPDF crash would take the stage down with it).

Each attack below goes through a real stage (real Redis and PostgreSQL) and must fail as an attack:
that one file is quarantined with its reason, its message is acknowledged, the next good file is
processed by the same stage, and the stage's own peak memory (VmHWM, reset before the attack)
stays small because the decoding happened in a sandboxed child.
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.documents.isolated import DocumentSandbox
from eva00.documents.sandbox import MIB, Limits, worker_command
from eva00.messages import StoredFileJob
from eva00.replica.filestore import FileStore
from eva00.runtime.stage import Stage, accepting
from eva00.stages.text_extractor import TextExtractor
from eva00.stages.thumbnailer import Thumbnailer
from tests import pdf_fixtures as fx
from tests.integration.test_thumbnails import drain, pdf_bytes, png_bytes, put

# The stage may grow by this much while the attack runs (the bomb alone needs 351 MB or more).
RSS_GROWTH_MAX_BYTES = 40 * MIB
CRASH_MARKER = b"%CRASH-MUPDF-HERE"
HANG_MARKER = b"%HANG-MUPDF-HERE"


def png_bomb(width: int = 12000, height: int = 12000) -> bytes:
    """A single-colour greyscale PNG, written by hand: 12000 x 12000 is 137 KiB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    squeeze = zlib.compressobj(9)
    row = b"\x00" * (1 + width)  # filter type 0, then one black byte per pixel
    body = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def text_bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One page of 300,000 words drawn on top of each other: about 2 s of CPU and 400 MB to read."""
    return fx.write_text_bomb(tmp_path_factory.mktemp("bomb") / "bomb.pdf", words=300_000).read_bytes()


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=2, open=True) as opened:
        yield opened


@pytest.fixture
def store(settings: Settings) -> FileStore:
    return FileStore(settings.data_dir)


def thumbnail_stage(settings: Settings, client: redis.Redis, pool: ConnectionPool, store: FileStore,
                    sandbox: DocumentSandbox) -> Stage:
    return Stage("thumbnailer", settings, client, pool, [(keys.STREAM_THUMBNAILS, keys.GROUP_THUMBNAILERS)],
                 accepting(StoredFileJob)(Thumbnailer(store, sandbox=sandbox)), consumer="bomb-test")


def text_stage(settings: Settings, client: redis.Redis, pool: ConnectionPool, store: FileStore,
               sandbox: DocumentSandbox) -> Stage:
    return Stage("text", settings, client, pool, [(keys.STREAM_TEXT, keys.GROUP_TEXT)],
                 accepting(StoredFileJob)(TextExtractor(store, sandbox=sandbox)), consumer="bomb-test")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


class PeakMemory:
    """This process's peak resident memory from now on (Linux: writing 5 to clear_refs resets VmHWM)."""

    def __enter__(self) -> PeakMemory:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        self.start_bytes = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        self.growth_bytes = _status_kib("VmHWM") * 1024 - self.start_bytes


def quarantined(pool: ConnectionPool, stage: str) -> dict[str, str]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT sha256, error FROM file_quarantine WHERE stage = %s", (stage,)).fetchall()
    return dict(rows)


def assert_acknowledged(stage: Stage, client: redis.Redis, stream: str, group: str) -> None:
    assert stage.stats.failed == 0 and stage.stats.dead_lettered == 0
    assert client.xpending(stream, group)["pending"] == 0


def test_the_png_bomb_is_refused_undecoded_and_the_next_photo_gets_its_thumbnail(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, store: FileStore) -> None:
    data = png_bomb()
    assert len(data) < 140 * 1024  # the attack as filed: 137 KiB on disk
    stage = thumbnail_stage(settings, redis_client, pool, store, DocumentSandbox())
    bomb = put(store, pool, redis_client, keys.STREAM_THUMBNAILS, data, "image/png")
    good = put(store, pool, redis_client, keys.STREAM_THUMBNAILS, png_bytes(800, 600), "image/png")
    with PeakMemory() as peak:
        drain(stage)
    assert quarantined(pool, "thumbnails") == {
        bomb: "the image is 12000 x 12000 pixels, more than the limit of 100000000 (EVA00_IMAGE_MAX_PIXELS)"}
    with pool.connection() as conn:
        assert conn.execute("SELECT source_sha256 FROM thumbnails").fetchall() == [(good,)]
    assert_acknowledged(stage, redis_client, keys.STREAM_THUMBNAILS, keys.GROUP_THUMBNAILERS)
    assert peak.growth_bytes < RSS_GROWTH_MAX_BYTES


def test_a_bomb_under_the_pixel_cap_is_stopped_by_the_memory_limit(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, store: FileStore) -> None:
    sandbox = DocumentSandbox(Limits(memory_bytes=250 * MIB), max_pixels=10**9)
    stage = thumbnail_stage(settings, redis_client, pool, store, sandbox)
    bomb = put(store, pool, redis_client, keys.STREAM_THUMBNAILS, png_bomb(), "image/png")
    good = put(store, pool, redis_client, keys.STREAM_THUMBNAILS, pdf_bytes("Level 2 framing"),
               "application/pdf")
    with PeakMemory() as peak:
        drain(stage)
    assert quarantined(pool, "thumbnails") == {bomb: "the renderer ran out of memory (limit 250 MB)"}
    with pool.connection() as conn:
        assert conn.execute("SELECT source_sha256 FROM thumbnails").fetchall() == [(good,)]
    assert_acknowledged(stage, redis_client, keys.STREAM_THUMBNAILS, keys.GROUP_THUMBNAILERS)
    assert peak.growth_bytes < RSS_GROWTH_MAX_BYTES


@pytest.mark.parametrize(("limits", "reason"), [
    (Limits(cpu_s=1, wall_s=120.0), "text extraction used more than 1 s of CPU time and was stopped"),
    (Limits(memory_bytes=250 * MIB), "the text extractor ran out of memory (limit 250 MB)"),
])
def test_a_pdf_too_costly_to_read_fails_alone_and_the_text_extractor_goes_on(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, store: FileStore,
        text_bomb: bytes, limits: Limits, reason: str) -> None:
    stage = text_stage(settings, redis_client, pool, store, DocumentSandbox(limits))
    bomb = put(store, pool, redis_client, keys.STREAM_TEXT, text_bomb, "application/pdf")
    good = put(store, pool, redis_client, keys.STREAM_TEXT, pdf_bytes("Fire stopping at level 4"),
               "application/pdf")
    with PeakMemory() as peak:
        drain(stage)
    assert quarantined(pool, "text") == {bomb: reason}
    with pool.connection() as conn:
        texts = dict(conn.execute("SELECT sha256, text FROM file_texts").fetchall())
    assert list(texts) == [good] and "Fire stopping at level 4" in texts[good]
    assert_acknowledged(stage, redis_client, keys.STREAM_TEXT, keys.GROUP_TEXT)
    assert peak.growth_bytes < RSS_GROWTH_MAX_BYTES


def misbehaving_worker() -> tuple[str, ...]:
    """The real worker, except on a file carrying a marker: it dies of SIGSEGV (what a MuPDF
    memory bug would do) or blocks without using CPU (a deadlock). No such PDF can be made on
    purpose, so the marker stands in for it; everything around the child is the real thing."""
    real = worker_command("eva00.documents.worker")
    misbehave = ("import os, signal, sys, time; data = open(sys.argv[2], 'rb').read();"
                 f" os.kill(os.getpid(), signal.SIGSEGV) if {CRASH_MARKER!r} in data else None;"
                 f" time.sleep(300) if {HANG_MARKER!r} in data else None; ")
    return (*real[:3], misbehave + real[3])


@pytest.mark.parametrize(("which", "marker", "limits", "reason"), [
    ("thumbnails", CRASH_MARKER, Limits(), "the renderer crashed (SIGSEGV)"),
    ("text", CRASH_MARKER, Limits(), "the text extractor crashed (SIGSEGV)"),
    ("text", HANG_MARKER, Limits(wall_s=5.0), "text extraction took longer than 5 s and was stopped"),
])
def test_a_pdf_that_crashes_or_hangs_the_child_fails_alone_and_the_stage_goes_on(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, store: FileStore,
        which: str, marker: bytes, limits: Limits, reason: str) -> None:
    sandbox = DocumentSandbox(limits, worker=misbehaving_worker())
    if which == "thumbnails":
        stage, stream, group = (thumbnail_stage(settings, redis_client, pool, store, sandbox),
                                keys.STREAM_THUMBNAILS, keys.GROUP_THUMBNAILERS)
        table, column = "thumbnails", "source_sha256"
    else:
        stage, stream, group = (text_stage(settings, redis_client, pool, store, sandbox),
                                keys.STREAM_TEXT, keys.GROUP_TEXT)
        table, column = "file_texts", "sha256"
    bad = put(store, pool, redis_client, stream, pdf_bytes("Shop drawings") + marker, "application/pdf")
    good = put(store, pool, redis_client, stream, pdf_bytes("Curtain wall mock-up"), "application/pdf")
    drain(stage)
    assert quarantined(pool, which) == {bad: reason}
    with pool.connection() as conn:
        assert conn.execute(f"SELECT {column} FROM {table}").fetchall() == [(good,)]
    assert_acknowledged(stage, redis_client, stream, group)


def test_neither_stage_loads_pymupdf_into_its_own_process() -> None:
    import subprocess

    code = ("import sys, eva00.stages.thumbnailer, eva00.stages.text_extractor;"
            " sys.exit('pymupdf' in sys.modules or 'fitz' in sys.modules)")
    root = str(Path(__file__).resolve().parents[2])
    assert subprocess.run([sys.executable, "-c", code], cwd=root, env={"PYTHONPATH": root},
                          check=False).returncode == 0
