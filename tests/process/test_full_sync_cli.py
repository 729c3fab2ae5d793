"""`eva00 full-sync` as an operator runs it, against real fetcher, differ and downloader processes
and the simulator: exit codes, the summary with the floor, the JSON status, progress lines when
stdout is a file and JSON lines with --json, Ctrl-C, re-runs that fetch nothing already committed,
a refused project named in one aggregated reason per kind, and a clear error when PostgreSQL is
unreachable."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from eva00.fullsync.progress import PROGRESS_KEYS, SUMMARY_KEYS
from eva00.ops.localstack import free_port
from eva00.proof.bench.full_sync import completeness, stage_env, stage_processes
from eva00.simulator.testing import SimHandle

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(sim: SimHandle, database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    environment = {**stage_env(sim, database_url, redis_url, tmp_path, window_max=100_000, window_s=60,
                               refill_per_s=500, burst=500, budget_per_min=100_000),
                   "EVA00_CLAIM_IDLE_MS": "1000"}
    with stage_processes(["fetcher", "differ", "downloader"], environment, tmp_path / "logs"):
        yield environment


def _full_sync(env: dict[str, str], *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eva00", "full-sync", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout_s)


def _status(env: dict[str, str]) -> dict[str, Any]:
    done = _full_sync(env, "--status", "--json")
    assert done.returncode == 0, done.stderr
    return dict(orjson.loads(done.stdout))


def _api_calls(sim: SimHandle) -> list[dict[str, Any]]:
    # The file host's first hops are API requests too (the token, the shared rate limit).
    return [e for e in sim.ledger() if e["host"] in ("api", "files") and "/oauth/" not in e["path"]
            and not e["path"].startswith("/_sim")]


def test_the_command_waits_for_records_and_files_then_exits_0_with_the_floor_and_a_rerun_fetches_nothing(
        env: dict[str, str], sim: SimHandle, database_url: str) -> None:
    done = _full_sync(env, "--wait", "--interval-s", "0.2", "--where")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "requests / floor" in done.stdout and "complete" in done.stdout
    assert "Where to look" in done.stdout and "dashboard" in done.stdout
    status = _status(env)
    assert status["status"] == "complete" and status["error_list"] == []
    assert status["files"] > 0 and status["files_done"] == status["files"] and status["files_pending"] == 0
    assert status["floor"] <= status["requests"] <= status["floor"] * 1.10
    # Every API request is accounted for: the run's listings and shows, and the downloads' first hops.
    assert status["requests"] + status["file_requests"] == len(_api_calls(sim))
    assert status["file_floor"] <= status["file_requests"] <= status["file_floor"] * 1.10
    assert status["api_requests_over_floor"] <= 1.10
    assert {k["kind"] for k in status["kinds"] if k["items"]} >= {"project", "rfi", "drawing", "image"}
    assert completeness(sim, database_url) == 1.0

    calls_before = len(_api_calls(sim))
    again = _full_sync(env, "--wait")
    assert again.returncode == 0 and "is complete" in again.stdout
    assert len(_api_calls(sim)) == calls_before, "a completed run is not fetched again"


def test_a_full_sync_piped_to_a_file_prints_a_progress_line_every_interval_and_then_the_summary(
        env: dict[str, str], sim: SimHandle, tmp_path: Path) -> None:
    sim.set_faults("slow", paths=r"/rfis", delay_s=0.25)  # so that the run lasts a few intervals
    log = tmp_path / "full-sync.log"
    with log.open("w") as out:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "eva00", "full-sync", "--phase", "1", "--phase", "2",
                               "--wait", "--no-files", "--interval-s", "0.1", "--progress-every", "0.5"],
                              env=env, cwd=ROOT, stdout=out, stderr=subprocess.PIPE, text=True, timeout=180)
        took_s = time.monotonic() - started
    text = log.read_text()
    assert done.returncode == 0, text[-3000:] + done.stderr[-3000:]
    lines = [line for line in text.splitlines() if " | records " in line]
    assert len(lines) >= 3, text
    assert len(lines) <= took_s / 0.5 + 2, "at most one line per interval (and the final one)"
    assert all("requests " in line and " / floor " in line and "files " in line and "ETA " in line
               and "%" in line for line in lines)
    assert "phase 2 active data" in text and " complete | " in lines[-1] and "100.0%" in lines[-1]
    assert "requests / floor" in text[text.rindex(lines[-1]):], "the summary table comes last"
    assert "jobs enqueued" in done.stderr, "the log lines stay, on stderr"


def test_json_lines_parse_carry_the_stable_keys_and_come_at_the_interval(
        env: dict[str, str], sim: SimHandle) -> None:
    sim.set_faults("slow", paths=r"/vendors", delay_s=1)
    done = _full_sync(env, "--phase", "1", "--wait", "--no-files", "--json", "--interval-s", "0.1",
                      "--progress-every", "0.3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [orjson.loads(line) for line in done.stdout.splitlines()]
    progress, summary = records[:-1], records[-1]
    assert len(progress) >= 2 and all(tuple(r) == PROGRESS_KEYS and r["event"] == "progress"
                                      for r in progress)
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(progress)]
    assert min(gaps) >= 0.3 * 0.9, gaps
    assert tuple(summary) == PROGRESS_KEYS + SUMMARY_KEYS
    assert (summary["event"], summary["status"], summary["exit_code"]) == ("summary", "complete", 0)
    assert summary["records"] > 0 and summary["percent"] == 100.0 and summary["reasons"] == []


def test_ctrl_c_stops_only_the_watching_and_the_next_run_continues_the_same_run(
        env: dict[str, str], sim: SimHandle, database_url: str) -> None:
    # Every RFI listing answers slowly while the fault is on, so the run cannot end before the
    # SIGINT arrives however fast the machine is: the signal is sent once an RFI listing is in flight.
    sim.set_faults("slow", paths=r"/rfis", delay_s=5)
    watcher = subprocess.Popen([sys.executable, "-m", "eva00", "full-sync", "--wait", "--interval-s", "0.2"],
                               env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _slowed(sim) and watcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _slowed(sim), f"no RFI listing reached the simulator (watcher exit {watcher.poll()})"
    watcher.send_signal(signal.SIGINT)
    _out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 130 and "the stages go on" in err
    sim.clear_faults()
    done = _full_sync(env, "--wait", "--interval-s", "0.2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    with psycopg.connect(database_url) as conn:
        runs = conn.execute("SELECT status FROM fullsync_runs").fetchall()
    assert runs == [("complete",)], "one run, continued"
    assert completeness(sim, database_url) == 1.0


def _slowed(sim: SimHandle) -> bool:
    return any(f["mode"] == "slow" and f["hits"] > 0 for f in sim.faults())


def test_a_refused_project_fails_the_run_naming_it_and_the_rerun_fetches_only_what_was_refused(
        env: dict[str, str], sim: SimHandle, database_url: str) -> None:
    assert _full_sync(env, "--phase", "1", "--wait", "--no-files").returncode == 0
    forbidden = min(p["id"] for p in sim.truth(kinds=["project"])["records"])
    sim.forbid_project(forbidden)
    done = _full_sync(env, "--phase", "2", "--wait", "--no-files")
    assert done.returncode == 1, done.stdout[-3000:]
    # one line per kind, naming the project, instead of one sentence per refused job
    refused = [line.strip() for line in done.stdout.splitlines() if "refused (403" in line]
    assert refused and all(line.endswith(f"in 1 project ({forbidden})") for line in refused), refused
    assert len(refused) == len({line.split(":")[0] for line in refused}), "one line per kind"
    status = _status(env)
    assert status["status"] == "incomplete" and status["errors"] > 0
    assert [r["examples"] for r in status["reasons"]] == [[forbidden]] * len(refused)
    assert len(status["error_list"]) >= len(refused), "the raw errors stay in the JSON"

    sim.allow_project(forbidden)
    seen = sim.ledger()[-1]["seq"]
    again = _full_sync(env, "--phase", "2", "--wait", "--no-files")
    assert again.returncode == 0, again.stdout[-3000:]
    refetched = [e for e in _api_calls(sim) if e["seq"] > seen
                 and "/files/" not in e["path"]]  # downloads of phase 1 go on (--no-files)
    assert refetched and all(str(forbidden) in e["path"] + str(e.get("query", "")) for e in refetched), \
        refetched[:3]
    with psycopg.connect(database_url) as conn:
        rfis = conn.execute("SELECT count(*) FROM rfis WHERE project_id = %s", (forbidden,)).fetchone()
    assert rfis is not None and rfis[0] > 0


def test_an_unreachable_database_gives_a_clear_error_and_exit_69(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"postgresql://eva00@127.0.0.1:{free_port()}/nowhere",
           "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "EVA00_VAR_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    done = _full_sync(env, "--wait", "--connect-timeout-s", "1", timeout_s=60)
    assert done.returncode == 69
    assert "cannot reach" in done.stderr and "make up" in done.stderr
    assert "Traceback" not in done.stderr
