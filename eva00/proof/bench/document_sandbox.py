"""Benchmark of the documents sandbox (security issue, finding 6): the files that took the
thumbnail stage to 351 MB and stalled the text extractor, through the real stages.

Goal: the 137 KiB PNG of 12000 x 12000 pixels and a 1,000-page PDF leave every stage's peak
resident memory under 200 MB. Each stage runs in a fresh process of its own (`drive` below: the
stage loop, handler and settings as its supervisord program builds them, against a PostgreSQL and
Redis started for the bench) that reports its own peak (VmHWM) and, separately, its children's
(``resource.getrusage(RUSAGE_CHILDREN)``: the largest sandboxed worker's). The outcome of every
file and the time per small photo (a child started per file) are reported next to it.

Why VmHWM for the stage itself: Linux carries the peak of the process that forked into
``getrusage(RUSAGE_SELF)`` across exec, so a stage started from a big parent would report the
parent's peak. The children's figure has the same flaw and is an upper bound (it includes the
stage's own pages at fork time); their real cap is the sandbox's address-space limit.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from eva00.config import ROOT_DIR

GOAL_STAGE_PEAK_MB = 200
PDF_PAGES = 1000
SMALL_PHOTOS = 10
STAGES = {"thumbnails": ("eva00.stages.thumbnailer", "Thumbnailer"),
          "text": ("eva00.stages.text_extractor", "TextExtractor")}


def png_bomb(width: int = 12000, height: int = 12000) -> bytes:
    """A single-colour greyscale PNG written by hand (12000 x 12000: 137 KiB, 144 M pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    squeeze = zlib.compressobj(9)
    row = b"\x00" * (1 + width)
    body = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def long_pdf(pages: int = PDF_PAGES) -> bytes:
    """A specification book: ``pages`` pages of 40 lines each."""
    import pymupdf

    document = pymupdf.open()
    for number in range(1, pages + 1):
        page = document.new_page()
        lines = [f"Section {number:04d}.{line:02d} Concrete cover to reinforcement shall be 40 mm."
                 for line in range(40)]
        page.insert_text((50, 60), "\n".join(lines), fontsize=9)
    data = bytes(document.tobytes(garbage=1, deflate=True))
    document.close()
    return data


def small_photo(seed: int) -> bytes:
    import pymupdf

    pixmap = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 1600, 1200), False)
    pixmap.clear_with(seed % 256)
    return bytes(pixmap.tobytes("png"))


class Files:
    """Files stored as the downloader leaves them, and their jobs on a stage's stream."""

    def __init__(self, database_url: str, redis_url: str, data_dir: Path) -> None:
        from eva00.replica.filestore import FileStore

        self.database_url, self.redis_url = database_url, redis_url
        self.store = FileStore(data_dir)

    def put(self, data: bytes, content_type: str, stream: str) -> str:
        import psycopg
        import redis

        from eva00.messages import StoredFileJob
        from eva00.runtime.bus import Bus

        temp, handle = self.store.open_temp()
        with handle:
            handle.write(data)
        sha256 = hashlib.sha256(data).hexdigest()
        stored = self.store.commit_hashed(temp, sha256, len(data))
        with psycopg.connect(self.database_url) as conn:
            conn.execute("INSERT INTO files (sha256, size_bytes, content_type, storage_path)"
                         " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                         (sha256, len(data), content_type, str(stored.path)))
        job = StoredFileJob(sha256=sha256, content_type=content_type, size_bytes=len(data))
        Bus(redis.Redis.from_url(self.redis_url), "bench").publish(stream, job)
        return sha256

    def outcome(self, sha256: str, stage: str) -> str:
        import psycopg

        done = {"thumbnails": "SELECT 'made' FROM thumbnails WHERE source_sha256 = %s",
                "text": "SELECT 'stored' FROM file_texts WHERE sha256 = %s"}[stage]
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(done, (sha256,)).fetchone() or conn.execute(
                "SELECT 'quarantined: ' || error FROM file_quarantine WHERE sha256 = %s AND stage = %s",
                (sha256, stage)).fetchone()
        return str(row[0]) if row else "not processed"


def drive(stage_name: str) -> dict[str, Any]:
    """In a fresh process: the stage as its program builds it, until its stream is empty."""
    import importlib

    from psycopg_pool import ConnectionPool

    from eva00 import keys
    from eva00.config import Settings
    from eva00.documents.isolated import DocumentSandbox
    from eva00.messages import StoredFileJob
    from eva00.replica.filestore import FileStore
    from eva00.runtime.process import redis_client
    from eva00.runtime.stage import Stage, accepting

    settings = Settings.from_env()
    module, name = STAGES[stage_name]
    handler = getattr(importlib.import_module(module), name)(
        FileStore(settings.data_dir), sandbox=DocumentSandbox.from_settings(settings))
    inputs = {"thumbnails": [(keys.STREAM_THUMBNAILS, keys.GROUP_THUMBNAILERS)],
              "text": [(keys.STREAM_TEXT, keys.GROUP_TEXT)]}[stage_name]
    started = time.monotonic()
    with ConnectionPool(settings.effective_database_url, min_size=1, max_size=2, open=True) as pool:
        stage = Stage(stage_name, settings, redis_client(settings), pool, inputs,
                      accepting(StoredFileJob)(handler), consumer=f"bench-{stage_name}")
        handled = 0
        while step := stage.step():
            handled += step
    own = _vm_hwm_bytes()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"handled": handled, "seconds": time.monotonic() - started, "stage_peak_bytes": own,
            "child_peak_bytes": children, "failed": stage.stats.failed,
            "dead_lettered": stage.stats.dead_lettered}


def _vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_stage(stage_name: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "eva00.proof.bench.document_sandbox", "drive", stage_name],
                          cwd=ROOT_DIR, env=env, capture_output=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the {stage_name} stage failed: {done.stderr.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def _figure(name: str, value: float, unit: str, goal: str) -> dict[str, Any]:
    from eva00.proof.bench.report import meets

    return {"name": name, "value": value, "unit": unit, "goal": goal, "met": meets(value, goal)}


def _measure(tmp_dir: Path, database_url: str, redis_url: str) -> list[dict[str, Any]]:
    from eva00 import keys
    from eva00.config import Settings

    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "EVA00_DATA_DIR": str(tmp_dir / "data"), "EVA00_VAR_DIR": str(tmp_dir / "var"),
           "EVA00_STREAM_BLOCK_MS": "200", "PYTHONPATH": str(ROOT_DIR)}
    files = Files(database_url, redis_url, tmp_dir / "data")
    bomb, book = png_bomb(), long_pdf()
    thumbs = {"PNG bomb": files.put(bomb, "image/png", keys.STREAM_THUMBNAILS),
              f"{PDF_PAGES}-page PDF": files.put(book, "application/pdf", keys.STREAM_THUMBNAILS)}
    texts = {f"{PDF_PAGES}-page PDF": files.put(book, "application/pdf", keys.STREAM_TEXT)}
    thumb_run, text_run = _run_stage("thumbnails", env), _run_stage("text", env)
    photos = [files.put(small_photo(seed), "image/png", keys.STREAM_THUMBNAILS)
              for seed in range(SMALL_PHOTOS)]
    photo_run = _run_stage("thumbnails", env)
    limit_mb = Settings().document_sandbox_memory_bytes / 1e6
    figures = []
    inputs = {"thumbnails": f"the PNG bomb and a {PDF_PAGES}-page PDF", "text": f"a {PDF_PAGES}-page PDF"}
    for stage, run in (("thumbnails", thumb_run), ("text", text_run)):
        figures += [
            _figure(f"{stage} stage: own peak RSS (VmHWM) over {inputs[stage]}",
                    run["stage_peak_bytes"] / 1e6, "MB", f"< {GOAL_STAGE_PEAK_MB}"),
            _figure(f"{stage} stage: largest sandboxed child's peak RSS, upper bound (goal: its limit)",
                    run["child_peak_bytes"] / 1e6, "MB", f"< {limit_mb:g}"),
            _figure(f"{stage} stage: messages that failed or were dead-lettered",
                    run["failed"] + run["dead_lettered"], "messages", "== 0")]
    outcomes = {**{f"thumbnails: {k}": files.outcome(v, "thumbnails") for k, v in thumbs.items()},
                **{f"text: {k}": files.outcome(v, "text") for k, v in texts.items()}}
    expected = {"thumbnails: PNG bomb": "quarantined: the image is 12000 x 12000",
                f"thumbnails: {PDF_PAGES}-page PDF": "made", f"text: {PDF_PAGES}-page PDF": "stored"}
    for name, want in expected.items():
        print(f"document_sandbox: {name}: {outcomes[name]}")
        figures.append(_figure(f"{name} {want.split(':')[0]} (1 = yes)",
                               float(outcomes[name].startswith(want)), "bool", "== 1"))
    made = sum(files.outcome(sha, "thumbnails") == "made" for sha in photos)
    figures += [_figure(f"thumbnails: small photos made of {SMALL_PHOTOS}", made, "photos",
                        f"== {SMALL_PHOTOS}"),
                _figure("thumbnails: seconds per small photo (a sandboxed child each)",
                        photo_run["seconds"] / SMALL_PHOTOS, "s", "< 1")]
    return figures


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    from eva00.proof.bench.services import local_services

    try:
        with local_services(tmp_dir) as services:
            return _measure(tmp_dir, services.database_url, services.redis_url)
    finally:
        shutil.rmtree(tmp_dir / "data", ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["drive"]:
        print(json.dumps(drive(sys.argv[2])))
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="eva00-bench-documents-") as work:
            for figure in run(Path(work)):
                print(f"{figure['name']}: {figure['value']:.4g} {figure['unit']} (goal {figure['goal']},"
                      f" {'met' if figure['met'] else 'NOT met'})")
