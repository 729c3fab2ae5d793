"""A complete EVA-00 stack for a chaos scenario: the real supervisord.conf in a temp dir on free
ports, with the embedded simulator, PostgreSQL and Redis, every stage, webhooks registered with the
simulator, and durations shrunk so a scenario runs in minutes.

The simulator's limits are scaled (``Scale.rate``) and the limiter is set to match them, so a rate
violation is a real finding. The stack is driven from outside only as an operator would: the
supervisor's RPC interface, `eva00` commands, the simulator's control API and HTTP to the webhook
listener.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00.config import ROOT_DIR, Settings
from eva00.fullsync.run import FullSync, Run
from eva00.kinds import FAMILY_KINDS
from eva00.ops import supervision
from eva00.ops.localstack import free_port
from eva00.proof.checker.run import CheckReport, check, simulator_at
from eva00.simulator.testing import SimHandle

WEBHOOK_SECRET = "chaos-webhook-secret-7c1f0b"  # also accepted: the one `eva00 webhooks register` makes
SERVICES = ("postgres", "redis", "simulator")


@dataclass(frozen=True)
class Scale:
    """How big a run is: the data set, the churn and the time given to each phase."""

    name: str
    projects: int
    items: int
    churn_per_s: float
    kills_per_stage: int
    fault_s: float  # how long each API fault lasts
    quiet_timeout_s: float  # how long the system may take to go quiet and check clean
    rate: tuple[int, float] = (600, 6.0)  # the simulator's limit (requests, window seconds)
    # Everyday polling must fit the limit beside the full sync: every (kind, project) once per
    # interval, every listing whole once per reconciliation interval.
    poll_interval_s: int = 5
    reconcile_interval_s: int = 20

    @property
    def rate_limit(self) -> tuple[int, float]:
        return self.rate


SCALES = {
    "ci": Scale("ci", projects=3, items=300, churn_per_s=2.0, kills_per_stage=1, fault_s=3.0,
                quiet_timeout_s=150.0),
    # Limits a tenth of the CI's, so the full sync lasts minutes and the kills land inside it.
    "full": Scale("full", projects=20, items=5000, churn_per_s=5.0, kills_per_stage=20, fault_s=60.0,
                  quiet_timeout_s=900.0, rate=(300, 6.0), poll_interval_s=30, reconcile_interval_s=120),
}


def stack_env(var_dir: Path, scale: Scale) -> dict[str, str]:
    requests_n, window_s = scale.rate
    per_min = int(requests_n * 60 / window_s)
    return {
        "EVA00_VAR_DIR": str(var_dir), "EVA00_DATA_DIR": str(var_dir / "data"),
        "EVA00_PG_PORT": str(free_port()), "EVA00_REDIS_PORT": str(free_port()),
        "EVA00_SIM_PORT": str(free_port()), "EVA00_SIM_STORAGE_PORT": str(free_port()),
        "EVA00_SIM_FILE_PORT": str(free_port()),
        "EVA00_WEBHOOK_PORT": str(free_port()), "EVA00_DASHBOARD_PORT": str(free_port()),
        "EVA00_SIM_PROJECTS": str(scale.projects), "EVA00_SIM_ITEMS": str(scale.items),
        # as in real companies, two tools switched off in some projects (Procore answers 403)
        "EVA00_SIM_TOOLS_OFF": "daily_logs@20%,meetings@20%",
        # The simulator's limit scaled, ours 5% under it (as in production: 95 of 100).
        "EVA00_SIM_RATE_LIMIT": f"{requests_n}/{window_s:g}", "EVA00_SIM_SPIKE": "off",
        "EVA00_RATE_WINDOW_S": f"{window_s:g}", "EVA00_RATE_WINDOW_MAX": str(int(requests_n * 0.95)),
        "EVA00_RATE_REFILL_PER_S": f"{requests_n * 0.9 / window_s:g}", "EVA00_RATE_BURST": "20",
        **{f"EVA00_BUDGET_{c}_PER_MIN": str(per_min) for c in ("SCHEDULED", "WEBHOOK", "ON_DEMAND")},
        "EVA00_POLL_INTERVALS": ",".join(f"{family}={scale.poll_interval_s}" for family in FAMILY_KINDS),
        # the adaptive schedule on the scenario's time scale: a quiet pair waits at most 8 intervals
        "EVA00_PLAN_TICK_S": "1", "EVA00_MAX_STALENESS_S": str(8 * scale.poll_interval_s),
        "EVA00_RECONCILE_INTERVAL_S": str(scale.reconcile_interval_s), "EVA00_FULLSYNC_STEP_S": "1",
        "EVA00_CLAIM_IDLE_MS": "3000", "EVA00_STREAM_BLOCK_MS": "500", "EVA00_OUTAGE_BACKOFF_CAP_S": "1",
        "EVA00_CONNECTION_ERROR_PAUSE_S": "2", "EVA00_BAD_ANSWER_RETRY_S": "1",
        "EVA00_POLL_SAFETY_MARGIN_S": "1",
        "EVA00_WEBHOOK_SECRETS": WEBHOOK_SECRET, "EVA00_WEBHOOK_REQUEUE_INTERVAL_S": "2",
        "EVA00_DOWNLOAD_REQUEUE_AFTER_S": "15", "EVA00_DOWNLOAD_HOUSEKEEPING_S": "5",
    }


class ChaosStack:
    def __init__(self, base: Path, scale: Scale, extra_env: Mapping[str, str] | None = None) -> None:
        self.base, self.scale = base, scale
        self.env = {**stack_env(base / "var", scale), **(extra_env or {})}
        self.full_env = {**os.environ, **self.env}
        self.settings = Settings.from_env(self.env, dotenv=None)
        self._pool: ConnectionPool | None = None
        self._redis: redis.Redis | None = None
        self.sim: SimHandle | None = None

    # --- lifecycle ---

    def up(self) -> None:
        self.eva00("up", "--wait-s", "90", timeout_s=180)
        if not supervision.is_running(self.settings):
            raise RuntimeError(f"supervisord did not start (logs in {self.base / 'var' / 'log'})")
        self.sim = self._wait(lambda: simulator_at(self.settings.api_base), 60, "the simulator")
        self._wait(self._postgres_ready, 90, "PostgreSQL")
        done = self.eva00("webhooks", "register", "--url",
                           f"http://127.0.0.1:{self.settings.webhook_port}/webhooks/procore", timeout_s=120)
        if done.returncode != 0:
            raise RuntimeError(f"webhooks register failed: {done.stdout}{done.stderr}")

    def down(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._redis is not None:
            self._redis.close()
        self.eva00("down", timeout_s=400)

    def eva00(self, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eva00", *args], env=self.full_env, cwd=ROOT_DIR,
                              capture_output=True, text=True, timeout=timeout_s)

    @staticmethod
    def _wait(probe: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return probe()
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not come up: {exc}") from exc
                time.sleep(0.3)

    def _postgres_ready(self) -> bool:
        with psycopg.connect(self.settings.effective_database_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1 FROM fullsync_runs LIMIT 1")
        return True

    # --- clients (reconnecting: the services themselves are killed in some scenarios) ---

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            self._pool = ConnectionPool(self.settings.effective_database_url, min_size=1, max_size=3,
                                        check=ConnectionPool.check_connection, open=True)
        return self._pool

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.settings.effective_redis_url, socket_timeout=10)
        return self._redis

    @property
    def simulator(self) -> SimHandle:
        assert self.sim is not None, "up() first"
        return self.sim

    # --- supervisord ---

    def rpc(self) -> Any:
        return supervision.rpc(self.settings)

    def programs(self) -> dict[str, dict[str, Any]]:
        return {i["name"]: i for i in self.rpc().supervisor.getAllProcessInfo()}

    def stage_types(self) -> list[str]:
        """Program names without their instance number, the services and the listener excepted."""
        names = {name.rsplit("-", 1)[0] if name[-1].isdigit() else name for name in self.programs()}
        return sorted(names - set(SERVICES) - {"supervisor_listener"})

    def kill9(self, program: str, states: tuple[str, ...] = ("RUNNING",)) -> bool:
        """SIGKILL the program's process (supervisord restarts it); False if it was in none of
        ``states`` (STARTING too: a crash during start-up counts towards FATAL)."""
        info = self.programs().get(program)
        if not info or info["statename"] not in states or not info["pid"]:
            return False
        try:
            os.kill(int(info["pid"]), signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def instances(self, stage_type: str) -> list[str]:
        return sorted(n for n in self.programs() if n == stage_type or n.rsplit("-", 1)[0] == stage_type)

    def wait_states(self, names: list[str], states: tuple[str, ...], timeout_s: float) -> None:
        """Until every one of ``names`` ("group:name" or a bare listener name) is in one of ``states``."""
        deadline = time.monotonic() + timeout_s
        bare = {n.split(":", 1)[-1] for n in names}
        while time.monotonic() < deadline:
            current = {n: i["statename"] for n, i in self.programs().items() if n in bare}
            if all(s in states for s in current.values()):
                return
            time.sleep(0.3)
        raise RuntimeError(f"programs not all {'/'.join(states)} after {timeout_s} s: {current}")

    def wait_running(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                states = {n: i["statename"] for n, i in self.programs().items()}
            except (OSError, xmlrpc.client.Fault):
                states = {}
            if states and all(s == "RUNNING" for s in states.values()):
                return
            time.sleep(0.3)
        raise RuntimeError(f"programs not all RUNNING after {timeout_s} s: {states}")

    # --- the work ---

    def start_full_sync(self) -> Run:
        return FullSync(self.settings, self.redis, self.pool).start(None, [1, 2, 3, 4], new=True)

    def full_sync(self, run: Run) -> Run | None:
        return FullSync(self.settings, self.redis, self.pool).load(run.run_id)

    def churn(self, per_s: float) -> None:
        self.simulator.configure(churn_per_s=per_s)

    def quiet_check(self, *, timeout_s: float | None = None,
                    expected_dead_letters: Callable[[dict[str, Any]], bool] | None = None) -> CheckReport:
        """Stop the churn and wait for a snapshot in which every checker figure is 0 (the scheduler
        keeps polling, so the replica catches up with the last changes); the last report if the
        deadline passes first."""
        self.churn(0.0)
        self.simulator.clear_faults()
        deadline = time.monotonic() + (timeout_s or self.scale.quiet_timeout_s)
        report: CheckReport | None = None
        while True:
            try:
                report = check(self.settings, self.simulator, self.redis, rate_limit=self.scale.rate_limit,
                               expected_dead_letters=expected_dead_letters)
                if report.passed:
                    return report
            except (psycopg.Error, redis.RedisError, OSError) as exc:  # a service still restarting
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the checker could not run: {exc}") from exc
            if time.monotonic() > deadline:
                assert report is not None
                return report
            time.sleep(3.0)

    def wait_for_phase(self, run: Run, phase: int, timeout_s: float = 120.0) -> None:
        """Until the run has started ``phase`` (or ended)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with self.pool.connection() as conn:
                    row = conn.execute("SELECT max(phase) FROM fullsync_jobs WHERE run_id = %s",
                                       (run.run_id,)).fetchone()
                current = self.full_sync(run)
            except psycopg.Error:  # PostgreSQL killed a moment ago, or still recovering
                time.sleep(0.5)
                continue
            if (row and row[0] and row[0] >= phase) or (current and current.status != "running"):
                return
            time.sleep(0.3)


@contextmanager
def running_stack(scale: Scale, extra_env: Mapping[str, str] | None = None,
                  keep: bool = False) -> Iterator[ChaosStack]:
    base = Path(tempfile.mkdtemp(prefix=f"eva00-chaos-{scale.name}-"))
    base.chmod(0o755)
    stack = ChaosStack(base, scale, extra_env)
    try:
        stack.up()
        yield stack
    finally:
        try:
            stack.down()
        finally:
            if not keep:
                shutil.rmtree(base, ignore_errors=True)
