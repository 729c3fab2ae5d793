"""Benchmark of tools switched off per project (issue 16, finding 7): the standard data set (20
projects, 5,000 items) with the Daily Log and Meetings tools switched off in a fifth of the
projects each, the simulator's limits scaled tenfold as in full_sync.py, the real fetcher and
differ processes (two fetchers, so refusals race), and two full syncs the same day.

Figures: requests used / floor of the first run (the floor carries the data; what a switched-off
tool costs is its refusal and one look at its project), refused requests per (project, kind)
over both runs (the second run must ask nothing of a tool refused that day), and whether both
runs ended complete with every refused pair in their unavailable table.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.fullsync.run import FullSync
from eva00.fullsync.status import run_status
from eva00.proof.bench.full_sync import WINDOW_N, WINDOW_S, stage_env, stage_processes
from eva00.proof.bench.services import local_services
from eva00.simulator.testing import SimHandle, running_simulator

TOOLS_OFF = "daily_logs@20%,meetings@20%"
STAGES = ["fetcher", "fetcher", "differ"]
TIMEOUT_S = 1800.0


def refused_pairs(sim: SimHandle) -> Counter[tuple[int, str]]:
    """Refused API requests per (project, endpoint) in the simulator's ledger."""
    found: Counter[tuple[int, str]] = Counter()
    for entry in sim.ledger():
        if entry["host"] != "api" or entry["status"] not in (403, 404) or entry["path"].startswith("/_sim"):
            continue
        match = re.search(r"/projects/(\d+)/([a-z_]+)", entry["path"])
        found[(int(match.group(1)), match.group(2)) if match else (0, entry["path"])] += 1
    return found


def drive(sync: FullSync, *, new: bool) -> dict[str, Any]:
    run = sync.start(None, [1, 2, 3, 4], new=new)
    deadline = time.monotonic() + TIMEOUT_S
    while run.status == "running":
        if time.monotonic() > deadline:
            raise TimeoutError(f"full sync {run.run_id} still running after {TIMEOUT_S} s")
        time.sleep(0.3)
        run = sync.step(run)
    return run_status(sync, run)


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    with local_services(tmp_dir) as services:
        return _measure(tmp_dir, services.database_url, services.redis_url)


def _measure(tmp_dir: Path, database_url: str, redis_url: str) -> list[dict[str, Any]]:
    with running_simulator(tmp_dir / "sim", projects=20, items=5000, rate_limit=f"{WINDOW_N}/{WINDOW_S:g}",
                           spike="25/1", file_size_bytes=4096, tools_off=TOOLS_OFF) as sim, \
            ConnectionPool(database_url, min_size=1, max_size=2) as pool:
        env = stage_env(sim, database_url, redis_url, tmp_dir)
        settings = Settings.from_env(env, dotenv=None)
        sync = FullSync(settings, redis.Redis.from_url(redis_url), pool)
        with stage_processes(STAGES, env, tmp_dir / "logs"):
            first = drive(sync, new=False)
            after_first = refused_pairs(sim)
            looks = sum(1 for e in sim.ledger() if e["host"] == "api"
                        and re.fullmatch(r"/rest/v1\.[01]/projects/\d+/?", e["path"]))
            second = drive(sync, new=True)
        refused = refused_pairs(sim)
        switched_off = sim.tools_off()
    pairs_off = sum(len(ids) for ids in switched_off.values())
    over_floor = first["requests"] / first["floor"] if first["floor"] else float("inf")
    worst = max(refused.values(), default=0)
    again = sum(refused.values()) - sum(after_first.values())
    listed = {(g["kind"], p) for status in (first, second) for g in status["unavailable"]
              for p in g["examples"]}
    both_complete = first["status"] == second["status"] == "complete" and bool(listed)
    return [
        {"name": f"tools switched off ({TOOLS_OFF}: {pairs_off} project tools): requests used / floor"
                 f" ({first['requests']} / {first['floor']}; {sum(after_first.values())} refused,"
                 f" {looks} looks at a project)", "value": over_floor, "unit": "ratio",
         "goal": "<= 1.02", "met": over_floor <= 1.02},
        {"name": f"tools switched off: refused requests per (project, kind) per day, the worst pair"
                 f" ({sum(refused.values())} refused over {len(refused)} pairs in two runs;"
                 f" {again} in the second)", "value": worst, "unit": "requests",
         "goal": "<= 1", "met": worst <= 1},
        {"name": "tools switched off: both runs complete with an unavailable table",
         "value": 1.0 if both_complete else 0.0, "unit": "bool", "goal": "== 1", "met": both_complete},
    ]


if __name__ == "__main__":
    import tempfile

    for figure in run(Path(tempfile.mkdtemp(prefix="eva00-bench-tools-off-"))):
        print(f"{figure['name']}: {figure['value']:.3f} {figure['unit']} (goal {figure['goal']})")
