"""Benchmarks of the downloader (issue 7), the real program (processes/downloader.py) against the
simulator on loopback:

- peak resident memory of the downloader process while it stores a 1 GiB file (goal < 100 MB);
- its throughput against a reference that does the same necessary work in the simplest way: the
  same signed URL from the same simulator streamed through hashlib.sha256 into a file on the same
  disk, with fsync (goal >= 0.8; the downloader also routes the job, resumes, checks the type and
  commits to PostgreSQL). Hashing is part of the reference because SHA-256 alone costs about
  0.6 CPU-s per GiB here: against a copy that does not hash the goal measured the hash, not the
  downloader. The medians of three alternating copies and downloads, after one copy that warms
  the page cache;
- a 1 GiB download killed with SIGKILL halfway and restarted: bytes the storage host sends after
  the restart beyond the ones still missing, as a share of the file (goal <= 5 %).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

from eva00 import keys
from eva00.config import ROOT_DIR
from eva00.messages import FileJob
from eva00.ops.localstack import start_postgres, start_redis
from eva00.runtime import db
from eva00.runtime.bus import Bus
from eva00.simulator.testing import SimHandle, running_simulator

SIZE_BYTES = 1 << 30
CHUNK_BYTES = 1 << 20
SAMPLES = 3  # bare copies and downloads alternate; the medians are compared (one disk, two cores)


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def _peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def hashing_copy_bps(sim: SimHandle, url: str, target: Path) -> float:
    """The reference: the same signed URL streamed through SHA-256 to disk, nothing else done."""
    location = requests.get(url, headers=sim.headers(), allow_redirects=False, timeout=30).headers["Location"]
    started = time.monotonic()
    digest = hashlib.sha256()
    with requests.get(location, stream=True, timeout=120) as answer, target.open("wb") as out:
        answer.raise_for_status()
        for chunk in answer.raw.stream(CHUNK_BYTES, decode_content=False):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    digest.hexdigest()
    elapsed = time.monotonic() - started
    target.unlink()
    return SIZE_BYTES / elapsed


class Bench:
    def __init__(self, tmp_dir: Path, sim: SimHandle, database_url: str, redis_url: str) -> None:
        self.tmp_dir, self.sim, self.database_url = tmp_dir, sim, database_url
        self.redis = redis.Redis.from_url(redis_url)
        self.data_dir = tmp_dir / "data"
        self.env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                    "EVA00_DATA_DIR": str(self.data_dir), "EVA00_VAR_DIR": str(tmp_dir / "var"),
                    "PROCORE_API_BASE": sim.api_base, "PROCORE_LOGIN_BASE": sim.login_base,
                    "EVA00_ALLOW_LOOPBACK_URLS": "1",
                    "PROCORE_CLIENT_ID": sim.client_id, "PROCORE_CLIENT_SECRET": sim.client_secret,
                    "PROCORE_COMPANY_ID": str(sim.company_id), "SUPERVISOR_PROCESS_NAME": "bench-downloader",
                    "EVA00_STREAM_BLOCK_MS": "100", "EVA00_DISK_FREE_MIN_RATIO": "0.0"}
        self.runs = 0
        # One connection for the status polls: a connection per poll would cost the machine's two
        # cores more than the downloader it is timing.
        self.conn = psycopg.connect(database_url, autocommit=True)

    def start(self) -> subprocess.Popen[bytes]:
        self.runs += 1
        log = (self.tmp_dir / f"downloader-{self.runs}.log").open("wb")
        program = str(ROOT_DIR / "processes" / "downloader.py")
        process = subprocess.Popen([sys.executable, program], cwd=ROOT_DIR, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT)
        time.sleep(2.0)  # imports, schema check, connections: not part of any figure
        if process.poll() is not None:
            raise RuntimeError(f"the downloader exited with {process.returncode}")
        return process

    def enqueue(self, url: str, procore_id: int) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "INSERT INTO record_files (kind, procore_id, project_id, url_field, source_url)"
                " VALUES ('submittal', %s, 1, 'attachments[id=1].url', %s) RETURNING id",
                (procore_id, url)).fetchone()
        job = FileJob(kind="submittal", procore_id=procore_id, project_id=1,
                      url_field="attachments[id=1].url", url=url, priority=1)
        Bus(self.redis, "bench-downloader").publish(keys.file_stream(job.priority), job)
        return int(row[0]) if row else 0

    def status(self, link: int) -> str:
        found = self.conn.execute("SELECT status FROM record_files WHERE id = %s", (link,)).fetchone()
        return str(found[0]) if found else ""

    def download(self, url: str, procore_id: int) -> tuple[float, int]:
        """(bytes per second from enqueue to commit, the process's peak RSS in bytes)."""
        process = self.start()
        try:
            started = time.monotonic()
            link = self.enqueue(url, procore_id)
            _wait_for(lambda: self.status(link) != "pending", 600, "the download")
            elapsed = time.monotonic() - started
            peak = _peak_rss_bytes(process.pid)
            if self.status(link) != "downloaded":
                raise RuntimeError(f"the download ended {self.status(link)}")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        return SIZE_BYTES / elapsed, peak

    def resume_extra_share(self, url: str, file_id: int) -> float:
        temp = self.data_dir / "tmp"
        process = self.start()
        link = self.enqueue(url, 0)
        partial = temp / f"dl-rf{link}"
        _wait_for(lambda: partial.exists() and partial.stat().st_size > SIZE_BYTES // 2, 600, "half the file")
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        kept = partial.stat().st_size
        seq = max(e["seq"] for e in self.sim.ledger())
        process = self.start()
        try:
            _wait_for(lambda: self.status(link) != "pending", 600, "the resumed download")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        sent = sum(e["bytes"] for e in self.sim.ledger(since_seq=seq)
                   if e["host"] == "storage" and e["path"].endswith(f"/{file_id}"))
        return max(0, sent - (SIZE_BYTES - kept)) / SIZE_BYTES


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    pg_spec, pg = start_postgres(tmp_dir / "stack")
    redis_spec, redis_server = start_redis(tmp_dir / "stack")
    try:
        db.apply_schema(pg_spec.owner_url, app_role=pg_spec.user)
        with running_simulator(tmp_dir / "sim", projects=1, items=50, rate_limit="off") as sim:
            bench = Bench(tmp_dir, sim, pg_spec.url, redis_spec.url)
            # A first copy is thrown away: the VM's first touch of the memory the page cache
            # takes made a cold copy up to twice as slow as the ones after it.
            hashing_copy_bps(sim, sim.new_file(SIZE_BYTES, "pdf")["url"], tmp_dir / "reference-copy")
            reference: list[float] = []
            downloads: list[tuple[float, int]] = []
            for sample in range(1, SAMPLES + 1):
                # a new file each time: the downloader stores each one (the same bytes would be
                # recognised by their sha256 and linked, not written)
                url = sim.new_file(SIZE_BYTES, "pdf")["url"]
                reference.append(hashing_copy_bps(sim, url, tmp_dir / "reference-copy"))
                downloads.append(bench.download(url, sample))
                shutil.rmtree(tmp_dir / "data" / "files", ignore_errors=True)
            reference_bps = statistics.median(reference)
            downloader_bps = statistics.median(bps for bps, _peak in downloads)
            peak_bytes = max(peak for _bps, peak in downloads)
            second = sim.new_file(SIZE_BYTES, "pdf")
            extra = bench.resume_extra_share(second["url"], second["file_id"])
            bench.conn.close()
            leaks = int(sim.stats()["token_leaks"])
    finally:
        redis_server.stop()
        pg.stop()
        shutil.rmtree(tmp_dir / "data", ignore_errors=True)  # two stored GiB
    ratio = downloader_bps / reference_bps
    peak_mb = peak_bytes / 1e6
    return [
        {"name": "downloader: peak RSS while storing a 1 GiB file", "value": peak_mb, "unit": "MB",
         "goal": "< 100", "met": peak_mb < 100},
        {"name": "downloader: throughput of a 1 GiB file (hash + fsync + commit)",
         "value": downloader_bps / 2**20, "unit": "MiB/s", "goal": "> 0", "met": downloader_bps > 0},
        {"name": "reference: the same URL streamed through sha256 to disk", "value": reference_bps / 2**20,
         "unit": "MiB/s", "goal": "> 0", "met": reference_bps > 0},
        {"name": "downloader throughput / hashing streaming copy", "value": ratio, "unit": "ratio",
         "goal": ">= 0.8", "met": ratio >= 0.8},
        {"name": "resume after kill -9 halfway: bytes re-sent beyond the missing ones", "value": extra * 100,
         "unit": "% of file", "goal": "<= 5", "met": extra <= 0.05},
        {"name": "downloader: token leaks to storage (requests carrying the bearer token)", "value": leaks,
         "unit": "requests", "goal": "== 0", "met": leaks == 0},
    ]


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="eva00-bench-downloader-") as tmp:
        for figure in run(Path(tmp)):
            print(json.dumps(figure))
