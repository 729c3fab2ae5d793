"""Benchmark of the initial full sync (issue 6): the standard data set (20 projects, 5,000 items)
with the simulator's limits scaled tenfold (100 per 6 s, spike 25 per 1 s) and our limiter set to
match, the real fetcher, differ and downloader processes, and the full-sync driver watching.

Figures: requests used / floor (the listings and shows the run needs; and every API request
including the downloads' first hops, which count against the same limit), achieved request rate /
allowed rate, limit violations, records equal to the ground truth, and the wall time projected to
the real 100-per-60-s limit next to the seed's 2.5-hour estimate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00.config import ROOT_DIR, Settings
from eva00.fullsync.run import FullSync
from eva00.fullsync.status import run_status
from eva00.proof.bench.services import local_services
from eva00.simulator.testing import SimHandle, running_simulator

WINDOW_N, WINDOW_S = 100, 6.0  # the simulator's scaled limit
SEED_ESTIMATE_S = 2.5 * 3600
REAL_WINDOW_S = 60.0
TIMEOUT_S = 1800.0
STAGES = ["fetcher", "fetcher", "differ", "downloader", "downloader", "downloader"]
ROOT = ROOT_DIR  # processes/ is at the repository root, wherever this module sits in the package


def stage_env(sim: SimHandle, database_url: str, redis_url: str, tmp_dir: Path, *,
              window_max: int = 95, window_s: float = WINDOW_S, refill_per_s: float = 15.8,
              burst: int = 8, budget_per_min: int | None = None) -> dict[str, str]:
    """Environment of a stage process pointed at the simulator, its limiter set to match it
    (production's budgets per class unless ``budget_per_min`` lifts them, for tests)."""
    budgets = {} if budget_per_min is None else {
        f"EVA00_BUDGET_{name}_PER_MIN": str(budget_per_min) for name in ("SCHEDULED", "WEBHOOK", "ON_DEMAND")}
    return {**os.environ, **budgets, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "PROCORE_CLIENT_ID": sim.client_id, "PROCORE_CLIENT_SECRET": sim.client_secret,
            "PROCORE_COMPANY_ID": str(sim.company_id), "PROCORE_API_BASE": sim.api_base,
            "PROCORE_LOGIN_BASE": sim.login_base, "EVA00_DATA_DIR": str(tmp_dir / "data"),
            "EVA00_ALLOW_LOOPBACK_URLS": "1",
            "EVA00_VAR_DIR": str(tmp_dir / "var"), "EVA00_RATE_BURST": str(burst),
            "EVA00_RATE_REFILL_PER_S": str(refill_per_s), "EVA00_RATE_WINDOW_MAX": str(window_max),
            "EVA00_RATE_WINDOW_S": str(window_s),
            # Budgets as in production: per minute, scaled to the window by the limiter itself.
            "EVA00_STREAM_BLOCK_MS": "200", "EVA00_CLAIM_IDLE_MS": "3000",
            "EVA00_POLL_SAFETY_MARGIN_S": "1"}


@contextmanager
def stage_processes(names: list[str], env: dict[str, str],
                    log_dir: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """processes/<stage>.py for each name (e.g. ["fetcher", "differ"]); SIGTERM at the end."""
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for index, name in enumerate(names):
            procs[f"{name}-{index}"] = start_stage(name, index, env, log_dir)
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_stage(name: str, index: int, env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    stage_env = {**env, "SUPERVISOR_PROCESS_NAME": f"{name}-{index}"}
    with (log_dir / f"{name}-{index}.log").open("ab") as log:
        return subprocess.Popen([sys.executable, str(ROOT / "processes" / f"{name}.py")], env=stage_env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def drive(sync: FullSync, timeout_s: float = TIMEOUT_S, interval_s: float = 0.3,
          wait_files: bool = False) -> dict[str, Any]:
    """Step the run to its end (and, with ``wait_files``, until no download is pending)."""
    run = sync.start(None, [1, 2, 3, 4])
    deadline = time.monotonic() + timeout_s
    status = run_status(sync, run)
    while run.status == "running" or (wait_files and status["files_pending"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"full sync {run.run_id} still {run.status} after {timeout_s} s")
        time.sleep(interval_s)
        run = sync.step(run)
        status = run_status(sync, run)
    return status


Key = tuple[str, int, int]


def live_hashes(sim: SimHandle, database_url: str) -> tuple[dict[Key, str], dict[Key, str]]:
    """(the simulator's, the replica's) live records: (kind, id, project or 0) -> payload hash."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT kind, procore_id, project_id, payload_hash FROM replica_records"
                            " WHERE NOT is_deleted").fetchall()
    replica = {(k, i, 0 if k == "project" else (p or 0)): h for k, i, p, h in rows}
    truth = {(r["kind"], r["id"], 0 if r["kind"] == "project" else (r["project_id"] or 0)): r["payload_hash"]
             for r in sim.truth()["records"] if not r["is_deleted"]}
    return truth, replica


def completeness(sim: SimHandle, database_url: str) -> float:
    truth, replica = live_hashes(sim, database_url)
    equal = sum(1 for key, value in truth.items() if replica.get(key) == value)
    return equal / len(truth) if truth else 1.0


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    with local_services(tmp_dir) as services:
        return _measure(tmp_dir, services.database_url, services.redis_url)


def _measure(tmp_dir: Path, database_url: str, redis_url: str) -> list[dict[str, Any]]:
    with running_simulator(tmp_dir / "sim", projects=20, items=5000, rate_limit=f"{WINDOW_N}/{WINDOW_S:g}",
                           spike="25/1", file_size_bytes=4096) as sim, \
            ConnectionPool(database_url, min_size=1, max_size=2) as pool:
        env = stage_env(sim, database_url, redis_url, tmp_dir)
        settings = Settings.from_env(env, dotenv=None)
        client = redis.Redis.from_url(redis_url)
        # The production set of supervisord.conf: two fetchers, one differ, three downloaders.
        with stage_processes(STAGES, env, tmp_dir / "logs"):
            status = drive(FullSync(settings, client, pool), wait_files=True)
        # The file host's hops count: they carry the token and share the API's rate limit.
        calls = [e for e in sim.ledger() if e["host"] in ("api", "files") and "/oauth/" not in e["path"]
                 and not e["path"].startswith("/_sim")]
        stats = sim.stats()
        complete = completeness(sim, database_url)
    used = len(calls)
    span_s = max(max(c["t"] for c in calls) - min(c["t"] for c in calls), 1e-6) if len(calls) > 1 else 1.0
    achieved = (used / span_s) / (WINDOW_N / WINDOW_S)
    listing_floor = status["floor"]
    floor = listing_floor + status["file_floor"]
    over_floor = (status["requests"] / listing_floor) if listing_floor else float("inf")
    all_over_floor = used / floor if floor else float("inf")
    projected_s = span_s * REAL_WINDOW_S / WINDOW_S
    return [
        {"name": f"full sync: requests used / floor (listings and shows: {status['requests']}"
                 f" / {listing_floor})", "value": over_floor, "unit": "ratio",
         "goal": "<= 1.10", "met": over_floor <= 1.10},
        {"name": f"full sync: every API request / floor (with {status['file_requests']} download hops:"
                 f" {used} / {floor})", "value": all_over_floor, "unit": "ratio",
         "goal": "<= 1.10", "met": all_over_floor <= 1.10},
        {"name": f"full sync: files downloaded ({status['files_done']} of {status['files']})",
         "value": status["files_done"] / status["files"] * 100 if status["files"] else 100.0, "unit": "%",
         "goal": ">= 100", "met": status["files_done"] == status["files"]},
        {"name": "full sync: bearer token sent to the storage host (Secure File Access)",
         "value": stats.get("token_leaks", 0), "unit": "requests", "goal": "== 0",
         "met": stats.get("token_leaks", 0) == 0},
        {"name": "full sync: achieved request rate / allowed rate", "value": achieved, "unit": "ratio",
         "goal": ">= 0.90", "met": achieved >= 0.90},
        {"name": "full sync: rate-limit violations", "value": stats.get("violations", 0),
         "unit": "requests", "goal": "== 0", "met": stats.get("violations", 0) == 0},
        {"name": "full sync: records equal to the ground truth", "value": complete * 100, "unit": "%",
         "goal": ">= 100", "met": complete >= 1.0},
        {"name": f"full sync: projected API time at 100/60 s ({used} requests, floor {floor};"
                 f" seed estimate {SEED_ESTIMATE_S / 3600:.1f} h)", "value": projected_s / 3600,
         "unit": "h", "goal": f"<= {SEED_ESTIMATE_S / 3600:.1f}", "met": projected_s <= SEED_ESTIMATE_S},
    ]


if __name__ == "__main__":
    import tempfile

    for figure in run(Path(tempfile.mkdtemp(prefix="eva00-bench-full-sync-"))):
        print(f"{figure['name']}: {figure['value']:.3f} {figure['unit']} (goal {figure['goal']})")
