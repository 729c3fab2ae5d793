"""Benchmark: the simulator is never the bottleneck.

- list requests per second of 100-item pages with limits off, the load coming from two separate
  client processes over keep-alive connections (goal >= 500 on a 2-core machine);
- file streaming: a 1 GiB file read by a lean client, against writing 1 GiB to the disk here with
  fsync (goal: the simulator streams at least as fast as the disk can take it, ratio >= 1), and the
  same file downloaded to disk end to end (reported);
- the simulator's resident memory growth while it streams that gigabyte (goal <= 64 MiB).

`python -m eva00.proof.bench.simulator` prints the figures.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from eva00.simulator.testing import SimHandle, running_simulator

LOAD_SECONDS = 5.0
CLIENT_PROCESSES = 2
CONNECTIONS_PER_PROCESS = 2
BIG_FILE_BYTES = 1 << 30
CHUNK_BYTES = 1 << 20


def _load(api_base: str, headers: dict[str, str], paths: list[str], seconds: float, connections: int) -> int:
    """One client process: keep-alive connections in threads, GET pages until time is up."""
    import threading

    parts = urlsplit(api_base)
    counts = [0] * connections
    deadline = time.monotonic() + seconds

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        index = slot
        while time.monotonic() < deadline:
            conn.request("GET", paths[index % len(paths)], headers=headers)
            answer = conn.getresponse()
            body = answer.read()
            if answer.status != 200 or not body.startswith(b"["):
                raise RuntimeError(f"unexpected answer {answer.status}")
            counts[slot] += 1
            index += connections
        conn.close()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def list_throughput(sim: SimHandle) -> float:
    headers = {**sim.headers(), "Accept": "application/json"}
    found = requests.get(sim.api_base + "/rest/v1.1/projects", params={"company_id": sim.company_id},
                         headers=headers, timeout=30).json()
    paths = []
    for project in found:
        for template in ("/rest/v1.0/images?project_id={p}&per_page=100&page={n}",
                         "/rest/v1.0/projects/{p}/rfis?per_page=100&page={n}",
                         "/rest/v1.0/projects/{p}/drawing_revisions?per_page=100&page={n}"):
            paths += [template.format(p=project["id"], n=n) for n in (1, 2)]
    for path in paths:  # every page is a full 100-item page
        if len(requests.get(sim.api_base + path, headers=headers, timeout=30).json()) != 100:
            raise RuntimeError(f"{path} is not a full page")
    context = multiprocessing.get_context("spawn")
    with context.Pool(CLIENT_PROCESSES) as pool:
        started = time.monotonic()
        counts = pool.starmap(_load, [(sim.api_base, headers, paths, LOAD_SECONDS, CONNECTIONS_PER_PROCESS)]
                              * CLIENT_PROCESSES)
        elapsed = time.monotonic() - started
    return sum(counts) / elapsed


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def stream_to_disk(url: str, target: Path | None) -> float:
    """Download with a lean client (http.client into one reused buffer) so the figure is the
    simulator's and the disk's, not a client library's."""
    parts = urlsplit(url)
    buffer = memoryview(bytearray(CHUNK_BYTES))
    started = time.monotonic()
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
    conn.request("GET", f"{parts.path}?{parts.query}")
    answer = conn.getresponse()
    if answer.status != 200:
        raise RuntimeError(f"download answered {answer.status}")
    received = 0
    with (target or Path(os.devnull)).open("wb") as out:
        while True:
            size = answer.readinto(buffer)
            if not size:
                break
            received += size
            if target is not None:
                out.write(buffer[:size])
        if target is not None:
            out.flush()
            os.fsync(out.fileno())
    conn.close()
    return received / (time.monotonic() - started)


def disk_write(target: Path, size_bytes: int) -> float:
    """The disk's own speed: 1 GiB written from memory and fsynced."""
    block = os.urandom(CHUNK_BYTES)
    started = time.monotonic()
    with target.open("wb") as out:
        for _ in range(size_bytes // CHUNK_BYTES):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return size_bytes / (time.monotonic() - started)


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    # 4 projects of 2,500 items: every list paged below has at least two full 100-item pages.
    with running_simulator(tmp_dir / "sim", projects=4, items=10_000, rate_limit="off") as sim:
        rate = list_throughput(sim)
        made = sim.new_file(BIG_FILE_BYTES)
        before = _rss_kib(sim.pid, "VmRSS")
        try:
            stream_bps = stream_to_disk(made["storage_url"], None)
            growth_mib = (_rss_kib(sim.pid, "VmHWM") - before) / 1024
            to_disk_bps = stream_to_disk(made["storage_url"], tmp_dir / "streamed.pdf")
            (tmp_dir / "streamed.pdf").unlink()
            disk_bps = disk_write(tmp_dir / "written.bin", BIG_FILE_BYTES)
        finally:
            for name in ("streamed.pdf", "written.bin"):
                (tmp_dir / name).unlink(missing_ok=True)
    ratio = stream_bps / disk_bps
    return [
        {"name": "simulator: list requests/s (100-item pages, limits off)", "value": round(rate, 1),
         "unit": "req/s", "goal": ">= 500", "met": rate >= 500},
        {"name": "simulator: 1 GiB streamed (client discards)", "value": round(stream_bps / 2**20, 1),
         "unit": "MiB/s", "goal": "> 0", "met": stream_bps > 0},
        {"name": "disk: 1 GiB written and fsynced", "value": round(disk_bps / 2**20, 1), "unit": "MiB/s",
         "goal": "> 0", "met": disk_bps > 0},
        {"name": "simulator: streaming speed / disk write speed", "value": round(ratio, 3), "unit": "ratio",
         "goal": ">= 1.0", "met": ratio >= 1.0},
        {"name": "simulator: 1 GiB downloaded to disk end to end", "value": round(to_disk_bps / 2**20, 1),
         "unit": "MiB/s", "goal": "> 0", "met": to_disk_bps > 0},
        {"name": "simulator: memory growth while streaming 1 GiB", "value": round(growth_mib, 1),
         "unit": "MiB", "goal": "<= 64", "met": growth_mib <= 64},
    ]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="eva00-bench-sim-") as tmp:
        for figure in run(Path(tmp)):
            print(json.dumps(figure))
